"""The livekit-agents worker: registration and the per-job entrypoint.

The worker registers with `agent_name` (AGENT_TO_DISPATCH) and therefore only
receives explicit dispatches — the DispatcherService's, carrying our metadata.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, room_io

from agent.config import AgentConfig
from agent.job_setup import fill_call_facts, setup_from_metadata
from agent.persona_agent import PersonaAgent
from agent.persona_plan import PersonaPlan, plan_persona
from agent.speech_stack import build_speech_stack, voice_catalog

logger = logging.getLogger(__name__)


def build_server(config: AgentConfig | None = None) -> AgentServer:
    config = config or AgentConfig.from_env()
    server = AgentServer()
    server.rtc_session(entrypoint, agent_name=config.agent_name)
    return server


async def entrypoint(ctx: JobContext) -> None:
    # Read in the job process: it inherits the worker's environment.
    config = AgentConfig.from_env()
    plan, caller = await prepare_call(ctx, config)
    stack = build_speech_stack(config, plan.voice)
    session: AgentSession = AgentSession(stt=stack.stt, llm=stack.llm, tts=stack.tts, vad=stack.vad)
    # The caller hanging up ends the session; the room has no other use after that.
    options = room_io.RoomOptions(delete_room_on_close=True)
    if caller is not None:
        # Talk to the caller even if someone else (a supervisor, a recorder) joined first.
        options.participant_identity = caller.identity
    await session.start(agent=PersonaAgent(plan), room=ctx.room, room_options=options)


async def prepare_call(ctx: JobContext, config: AgentConfig) -> tuple[PersonaPlan, rtc.RemoteParticipant | None]:
    """Metadata (or the default persona) + the caller's SIP attributes → the plan.

    Never raises on bad metadata or a missing caller: the call is answered anyway.
    """
    setup = setup_from_metadata(ctx.job.metadata, room_name=ctx.job.room.name)
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
    caller = await wait_for_caller(ctx, config, identity=setup.call.participant_identity or None)
    if caller is not None:
        setup = dataclasses.replace(setup, call=fill_call_facts(setup.call, caller.attributes))
    ctx.log_context_fields = {
        **ctx.log_context_fields,
        "trace_id": setup.trace_id,
        "persona_id": setup.persona.persona_id,
        "sip_call_id": setup.call.sip_call_id,
    }
    return plan_persona(setup, voice_catalog(config)), caller


async def wait_for_caller(
    ctx: JobContext, config: AgentConfig, *, identity: str | None = None
) -> rtc.RemoteParticipant | None:
    """The caller's SIP participant, or None if it does not show up in time.

    The call facts in metadata usually suffice, so a missing participant is not
    fatal: the agent still answers with what it has.
    """
    try:
        return await asyncio.wait_for(
            ctx.wait_for_participant(identity=identity, kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP),
            timeout=config.sip_participant_timeout,
        )
    except (TimeoutError, RuntimeError) as exc:
        logger.warning(
            "no SIP participant to read call facts from; using job metadata only: %s",
            exc or "timed out",
            extra={"participant_identity": identity or ""},
        )
        return None
