"""A persona change reaches a call in progress: a real PersonaService (CRM stand-in
behind it) publishes the change, the job's session — a real AgentSession with a
scripted LLM, in livekit-agents' fake_job_context — follows its number, and the
next reply is asked with the new instructions while the voice stays the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from livekit.agents.testing import fake_job_context

from agent.call_events import friday_events
from agent.config import AgentConfig
from agent.job_setup import setup_from_metadata
from agent.persona_updates import PERSONA_UPDATED
from agent.speech_stack import SpeechStack
from agent.voice_selection import VoiceChoice
from agent.worker import AnsweredCall, answer_call
from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.persona_pb2 import PersonaSource
from services.common.job_metadata import encode
from services.grpc_runtime import ServerConfig
from services.persona.client import PersonaClient
from services.persona.config import CrmConfig, PersonaConfig
from services.persona.mapping import persona_from_json
from services.persona.server import build_server
from services.testing.agent_job import CallJobStandIn
from services.testing.crm import CrmStandIn
from services.testing.speech import ScriptedLLM
from tests.agent.test_session import SIP_CALLER

NUMBER = "+918655701159"
NATIONAL = "8655701159"
GUARD_S = 20  # against a hang only
V1 = {
    "persona_id": "xeny",
    "personality": "You are Asha at Xeny. Offer demos on Mondays.",
    "welcome_message": "Namaste, Xeny here.",
    "closing_message": "Bye from Xeny.",
    "voice": {"provider": "cartesia", "voice_id": "asha"},
}
V2 = {
    **V1,
    "personality": "You are Asha at Xeny. Demos are now on Fridays; caller is {{caller_number}}.",
    "closing_message": "Thanks, bye from Xeny.",
    "voice": {"provider": "cartesia", "voice_id": "someone-else"},
}


@dataclass
class Live:
    answered: AnsweredCall
    llm: ScriptedLLM
    client: PersonaClient
    crm: CrmStandIn
    voices: list[VoiceChoice]


@asynccontextmanager
async def live_call(crm: CrmStandIn, *, change_before_answer: bool = False) -> AsyncIterator[Live]:
    crm.set_persona(NATIONAL, V1)
    async with AsyncExitStack() as stack:
        config = PersonaConfig(crm=CrmConfig(api_base=crm.base_url, probe_interval_seconds=0))
        server = build_server(config, ServerConfig(host="127.0.0.1", port=0, metrics_port=None))
        await server.start()
        stack.push_async_callback(server.stop, 0)
        client = PersonaClient(server.address, timeout=5)
        stack.push_async_callback(client.close)
        dispatched = await client.get_persona(NUMBER)  # what the gateway would have looked up
        metadata = encode(
            AgentJobMetadata(
                persona=dispatched.persona,
                persona_source=PersonaSource.PERSONA_SOURCE_CRM,
                call=CallFacts(dialed_number=NUMBER, caller_number="+14155550199", room="call-room"),
                trace_id="EV_live",
            )
        )
        if change_before_answer:  # the CRM changes between the dispatch and the job: no subscriber yet
            crm.set_persona(NATIONAL, V2)
            await client.notify_changes([NUMBER])
        llm = ScriptedLLM(["Sure, Monday works.", "Sure, Friday works."])
        voices: list[VoiceChoice] = []

        def text_only(_config: AgentConfig, voice: VoiceChoice) -> SpeechStack:
            voices.append(voice)
            return SpeechStack(stt=None, llm=llm, tts=None, vad=None)

        with fake_job_context(job_metadata=metadata) as ctx:
            job = CallJobStandIn(SIP_CALLER)
            setup = setup_from_metadata(ctx.job.metadata, room_name=ctx.job.room.name)
            agent_config = AgentConfig(sip_participant_timeout=0.2, persona_target=server.address)
            try:
                answered = await asyncio.wait_for(answer_call(job, setup, agent_config, build_stack=text_only), GUARD_S)
                yield Live(answered, llm, client, crm, voices)
            finally:
                await job.aclose()


async def persona_updates(live: Live, count: int) -> list[dict[str, Any]]:
    for _ in range(4000):
        events = friday_events(live.answered.session.history, PERSONA_UPDATED)
        if len(events) >= count:
            return events
        await asyncio.sleep(0.005)
    raise AssertionError("no persona_updated event")


async def test_a_change_mid_call_steers_the_next_reply_and_keeps_the_voice(crm: CrmStandIn) -> None:
    async with live_call(crm) as live:
        session = live.answered.session
        await session.run(user_input="When are demos?")
        assert "Mondays" in live.llm.system_prompt(0)

        assert live.answered.follower is not None
        await asyncio.wait_for(live.answered.follower.subscribed.wait(), GUARD_S)
        live.crm.set_persona(NATIONAL, V2)
        (refreshed,) = (await live.client.notify_changes([NUMBER])).refreshed
        assert refreshed.changed
        (event,) = await persona_updates(live, 1)
        plan = live.answered.agent.plan  # type: ignore[union-attr]
        assert event["old_version"] != event["new_version"] == plan.persona_version

        await session.run(user_input="And now?")
        instructions = live.llm.system_prompt(1)
        assert "Fridays" in instructions and "Mondays" not in instructions
        assert "caller is +14155550199" in instructions  # re-rendered with this call's facts
        assert plan.closing_message == "Thanks, bye from Xeny."
        # The voice the caller has been hearing stays, although the new version names another.
        assert plan.voice == live.voices[0] and plan.voice.voice == "asha"


async def test_a_persona_service_that_goes_away_leaves_the_call_alone(crm: CrmStandIn) -> None:
    async with live_call(crm) as live:
        assert live.answered.follower is not None
        await crm.stop()  # the CRM, and with it every refetch, gone
        result = await live.answered.session.run(user_input="Hello?")
        assert any(e.type == "message" for e in result.events)
        assert "Mondays" in live.llm.system_prompt(0)


async def test_a_change_before_the_follower_subscribed_is_caught_up(crm: CrmStandIn) -> None:
    """Between the dispatch and the follower's stream, a change has no subscriber to reach:
    once subscribed, the follower compares with what PersonaService answers now."""
    async with live_call(crm, change_before_answer=True) as live:
        (event,) = await persona_updates(live, 1)
        assert event["new_version"] == persona_from_json(V2).version
        await live.answered.session.run(user_input="When are demos?")
        assert "Fridays" in live.llm.system_prompt(0)


def test_persona_from_json_keeps_the_versions_distinct() -> None:
    assert persona_from_json(V1).version != persona_from_json(V2).version
