"""A campaign's action instead of a conversation: the agent says the message in
the persona's voice (synthesised while the caller still rings, like a spoken
greeting), never runs an LLM turn, then hangs up or transfers. A real AgentSession
with scripted TTS/LLM, the job's room the recording stand-in."""

from __future__ import annotations

import asyncio
import time

from livekit.agents.testing import fake_job_context

from agent.call_action import CALL_ACTION, CallActionAgent
from agent.call_events import friday_events
from agent.config import AgentConfig
from agent.job_setup import setup_from_metadata
from agent.speech_stack import SpeechStack
from agent.voice_selection import VoiceChoice
from agent.worker import answer_call
from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.campaign_pb2 import CallAction, CallActionKind
from friday.persona.v1.persona_pb2 import PersonaSource
from services.common.job_metadata import encode
from services.testing.agent_job import CallJobStandIn, JobEvent
from services.testing.speech import RecordingAudioOutput, ScriptedLLM, ScriptedTTS
from tests.agent.personas import acme_persona
from tests.agent.test_answer_order import CALLER, HANG_GUARD_S

CLOSED = CallAction(kind=CallActionKind.CALL_ACTION_KIND_REJECT, message="We are closed. Please call back at nine.")
TRANSFER = CallAction(
    kind=CallActionKind.CALL_ACTION_KIND_TRANSFER,
    message="Connecting you to the on-call line.",
    transfer_to="+14155550123",
)


def metadata_with(action: CallAction) -> str:
    return encode(
        AgentJobMetadata(
            persona=acme_persona(),
            persona_source=PersonaSource.PERSONA_SOURCE_CRM,
            call=CallFacts(dialed_number="+14155550100", caller_number="+14155550199", room="call-room"),
            trace_id="EV_action",
            action=action,
        )
    )


async def run_action(
    action: CallAction, *, transfer_error: Exception | None = None
) -> tuple[CallJobStandIn, ScriptedTTS, ScriptedLLM, list[VoiceChoice]]:
    job = CallJobStandIn(CALLER, audio=RecordingAudioOutput(), transfer_error=transfer_error)
    tts, llm = ScriptedTTS(first_audio_delay=0.05), ScriptedLLM(["I should never be asked."])
    voices: list[VoiceChoice] = []

    def build_stack(_config: AgentConfig, voice: VoiceChoice) -> SpeechStack:
        voices.append(voice)
        job.events.append(JobEvent("stack", time.monotonic()))
        return SpeechStack(stt=None, llm=llm, tts=tts, vad=None)

    with fake_job_context(job_metadata=metadata_with(action)) as ctx:
        setup = setup_from_metadata(ctx.job.metadata, room_name=ctx.job.room.name)
        config = AgentConfig(sip_participant_timeout=0.2)
        try:
            answered = await asyncio.wait_for(answer_call(job, setup, config, build_stack=build_stack), HANG_GUARD_S)
            assert isinstance(answered.agent, CallActionAgent)
            await asyncio.wait_for(job.ended.wait(), HANG_GUARD_S)
            assert job.session is not None
            events = friday_events(job.session.history, CALL_ACTION)
            assert events and events[0]["trace_id"] == "EV_action"
        finally:
            await job.aclose()
    return job, tts, llm, voices


async def test_a_closed_hours_action_says_its_message_then_hangs_up() -> None:
    job, tts, llm, voices = await run_action(CLOSED)
    assert job.names() == ["stack", "connect", "caller", "session_start", "subscribe", "greeting_audio", "end_call"]
    # The message was synthesised once, ahead, in the persona's voice, and played before the hang-up.
    assert [r.text for r in tts.requests] == [CLOSED.message]
    assert voices[0].voice == "maya-voice"
    assert job.event("end_call").detail["audio_frames"] > 0
    assert job.event("subscribe").detail["assistant_messages"] == 0
    assert llm.requests == []  # no conversation, not even one turn


async def test_a_transfer_action_transfers_the_caller_after_the_message() -> None:
    job, tts, llm, _ = await run_action(TRANSFER)
    assert job.names()[-1] == "transfer" and "end_call" not in job.names()
    transfer = job.event("transfer").detail
    assert transfer["identity"] == CALLER.identity and transfer["transfer_to"] == "+14155550123"
    assert transfer["audio_frames"] > 0
    assert [r.text for r in tts.requests] == [TRANSFER.message] and llm.requests == []


async def test_a_failed_transfer_hangs_up_instead_of_leaving_the_caller_in_silence() -> None:
    job, _, _, _ = await run_action(TRANSFER, transfer_error=RuntimeError("SIP 486 busy"))
    assert job.names()[-2:] == ["transfer", "end_call"]


def test_an_action_the_agent_cannot_carry_out_is_dropped_for_a_conversation() -> None:
    for bad in (
        CallAction(kind=CallActionKind.CALL_ACTION_KIND_TRANSFER, message="Hold on.", transfer_to="+1 evil\nSYSTEM"),
        CallAction(kind=CallActionKind.CALL_ACTION_KIND_TRANSFER, message="Hold on.", transfer_to="sip:nobody"),
        CallAction(kind=CallActionKind.CALL_ACTION_KIND_REJECT, message="   "),
        CallAction(kind=CallActionKind.CALL_ACTION_KIND_REJECT, message="Bye", transfer_to="+14155550123"),
    ):
        setup = setup_from_metadata(metadata_with(bad), room_name="call-room")
        assert setup.action is None and setup.persona.persona_id == acme_persona().persona_id
    assert setup_from_metadata(metadata_with(TRANSFER)).action == TRANSFER
