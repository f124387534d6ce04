"""The livekit-agents worker: registration and the per-job entrypoint.

The worker registers with `agent_name` (AGENT_TO_DISPATCH) and therefore only
receives explicit dispatches — the DispatcherService's, carrying our metadata.

A job answers one call, in an order chosen so the caller hears ringing, not
silence, until the greeting (agent/call_job.py says why): the persona is planned
from the job metadata alone and the speech stack and session are built before the
room is even joined; the room is joined subscribed to nothing; a spoken greeting's
first audio is synthesised (agent/greeting_audio.py); the session starts only then,
and the caller's audio is subscribed to when the session can speak the greeting,
which follows at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from livekit.agents import AgentServer, AgentSession, JobContext

from agent.call_action import CallActionAgent, action_name
from agent.call_job import Caller, CallJob, LiveKitCallJob
from agent.config import AgentConfig
from agent.greeting import GreetingKind
from agent.greeting_audio import prefetch_greeting
from agent.job_setup import JobSetup, fill_call_facts, setup_from_metadata
from agent.persona_agent import PersonaAgent
from agent.persona_plan import plan_persona
from agent.persona_updates import PersonaFollower, PersonaServiceChanges
from agent.speech_stack import SpeechStack, build_speech_stack, voice_catalog
from agent.voice_selection import VoiceCatalog, VoiceChoice
from friday.persona.v1.campaign_pb2 import CallAction, CallActionKind
from services.common.log_safety import protect_handlers

logger = logging.getLogger(__name__)

StackBuilder = Callable[[AgentConfig, VoiceChoice], SpeechStack]


def build_server(config: AgentConfig | None = None) -> AgentServer:
    config = config or AgentConfig.from_env()
    server = AgentServer(host=config.health_host)
    server.rtc_session(entrypoint, agent_name=config.agent_name)
    return server


async def entrypoint(ctx: JobContext) -> None:
    # livekit-agents set up this job process's logging: make its handlers escape the
    # caller's text as every Friday service's do.
    protect_handlers(logging.getLogger())
    # Read in the job process: it inherits the worker's environment.
    config = AgentConfig.from_env()
    setup = setup_from_metadata(ctx.job.metadata, room_name=ctx.job.room.name)
    await answer_call(LiveKitCallJob(ctx), setup, config)


@dataclass
class AnsweredCall:
    session: AgentSession
    agent: PersonaAgent | CallActionAgent
    caller: Caller | None
    follower: PersonaFollower | None = None  # applies persona changes while the call lasts


async def answer_call(
    job: CallJob, setup: JobSetup, config: AgentConfig, *, build_stack: StackBuilder = build_speech_stack
) -> AnsweredCall:
    """Plan, build, join, fetch the greeting's audio, start, then let the caller in and greet.

    Never raises on bad metadata or a missing caller: the call is answered anyway.
    """
    # Before the room: what this job was dispatched for, even if the room never connects.
    logger.info(
        "job setup read",
        extra={
            "persona_id": setup.persona.persona_id,
            "persona_source": setup.source_name,
            "trace_id": setup.trace_id,
            "room": setup.call.room,
            "fallback_reason": setup.fallback_reason,
        },
    )
    job.annotate_logs(_log_fields(setup))
    catalog = voice_catalog(config)
    plan = plan_persona(setup, catalog)
    stack = build_stack(config, plan.voice)
    session: AgentSession = AgentSession(stt=stack.stt, llm=stack.llm, tts=stack.tts, vad=stack.vad)

    await job.connect()
    caller = await _find_caller(job, config, identity=setup.call.participant_identity or None)
    if caller is not None:
        filled = fill_call_facts(setup.call, caller.attributes)
        if filled != setup.call:
            # The call facts feed only the texts (placeholders), never the voice: the
            # stack built from the first plan stays right.
            setup = dataclasses.replace(setup, call=filled)
            plan = plan_persona(setup, catalog)
            job.annotate_logs(_log_fields(setup))

    if setup.action is not None:
        return await _answer_with_action(job, setup.action, session, stack, config, caller, setup.trace_id)

    greeting_audio = None
    if plan.greeting.kind is GreetingKind.SPOKEN:
        greeting_audio = await prefetch_greeting(stack.tts, plan.greeting.text, wait=config.greeting_audio_wait)
    agent = PersonaAgent(
        plan, before_greeting=lambda: job.subscribe_caller_audio(caller), greeting_audio=greeting_audio
    )
    await job.start_session(session, agent, caller)
    return AnsweredCall(
        session=session, agent=agent, caller=caller, follower=_follow(session, setup, catalog, agent, config)
    )


def _follow(
    session: AgentSession, setup: JobSetup, catalog: VoiceCatalog, agent: PersonaAgent, config: AgentConfig
) -> PersonaFollower | None:
    """Follows the call's number for persona changes until the session closes."""
    if not config.persona_target or not setup.call.dialed_number:
        return None
    follower = PersonaFollower(
        PersonaServiceChanges(config.persona_target, token=config.persona_token), setup, catalog, agent
    )
    task = asyncio.create_task(follower.run(), name="persona-updates")
    _following.add(task)
    task.add_done_callback(_following.discard)
    session.on("close", lambda _event: task.cancel())
    return follower


# Held until done: the event loop keeps only weak references to tasks.
_following: set[asyncio.Task[None]] = set()


async def _answer_with_action(
    job: CallJob,
    action: CallAction,
    session: AgentSession,
    stack: SpeechStack,
    config: AgentConfig,
    caller: Caller | None,
    trace_id: str,
) -> AnsweredCall:
    """The campaign chose an action: its message is the greeting (audio fetched before
    the session starts, as for a spoken welcome), then the hang-up or the transfer."""
    audio = await prefetch_greeting(stack.tts, action.message, wait=config.greeting_audio_wait)

    async def perform() -> None:
        await _carry_out(job, action, caller)

    agent = CallActionAgent(
        action,
        perform=perform,
        before_message=lambda: job.subscribe_caller_audio(caller),
        message_audio=audio,
        trace_id=trace_id,
    )
    await job.start_session(session, agent, caller)
    return AnsweredCall(session=session, agent=agent, caller=caller)


async def _carry_out(job: CallJob, action: CallAction, caller: Caller | None) -> None:
    """Transfer (when asked and possible), else hang up: the caller is never left in a
    room where nobody will speak again."""
    if action.kind == CallActionKind.CALL_ACTION_KIND_TRANSFER:
        if caller is None:
            logger.warning("no SIP participant to transfer; hanging up instead")
        else:
            try:
                await job.transfer_caller(caller, action.transfer_to)
                logger.info("caller transferred", extra={"transfer_to": action.transfer_to})
                return
            except Exception as exc:  # noqa: BLE001 - any failure ends in a hang-up, not a silent room
                logger.error("transfer to %s failed; hanging up: %s", action.transfer_to, exc)
    logger.info("ending the call after its %s action", action_name(action))
    await job.end_call()


def _log_fields(setup: JobSetup) -> dict[str, str]:
    return {
        "trace_id": setup.trace_id,
        "persona_id": setup.persona.persona_id,
        "sip_call_id": setup.call.sip_call_id,
    }


async def _find_caller(job: CallJob, config: AgentConfig, *, identity: str | None) -> Caller | None:
    """The caller's SIP participant, or None if it does not show up in time.

    The call facts in metadata usually suffice, so a missing participant is not
    fatal: the agent still answers with what it has.
    """
    try:
        return await asyncio.wait_for(job.wait_for_caller(identity), timeout=config.sip_participant_timeout)
    except (TimeoutError, RuntimeError) as exc:
        logger.warning(
            "no SIP participant to read call facts from; using job metadata only: %s",
            exc or "timed out",
            extra={"participant_identity": identity or ""},
        )
        return None
