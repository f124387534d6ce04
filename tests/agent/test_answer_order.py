"""The order in which a job answers a call: the persona planned and the speech stack
built before the room is touched, the session started, and only then the caller's
audio subscribed to, right before the greeting — so the caller hears ringing, not
silence, until the agent speaks (agent/call_job.py says why).

A real AgentSession with a scripted TTS and LLM speaks into a recording audio
output; the job's room is the stand-in of services/testing/agent_job.py, which
records each step. The order is asserted, never a duration (the time from
subscription to the first greeting frame is measured by bench/agent_answer.py;
see the README's "Voice agent")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from livekit.agents.testing import fake_job_context

from agent.call_job import Caller
from agent.config import AgentConfig
from agent.job_setup import setup_from_metadata
from agent.speech_stack import SpeechStack
from agent.voice_selection import VoiceChoice
from agent.worker import AnsweredCall, answer_call
from friday.persona.v1.persona_pb2 import GreetingMode
from services.testing.agent_job import CallJobStandIn, JobEvent
from services.testing.speech import RecordingAudioOutput, ScriptedLLM, ScriptedTTS
from tests.agent.personas import acme_persona, job_metadata

HANG_GUARD_S = 30  # against a hang only
CALLER = Caller("sip_+14155550199", {"sip.phoneNumber": "+14155550199"})
ANSWER_ORDER = ["stack", "connect", "caller", "session_start", "subscribe", "greeting_audio"]


@asynccontextmanager
async def answering(
    metadata: str,
    *,
    caller: Caller | None = CALLER,
    llm_replies: list[str] | None = None,
    tts: ScriptedTTS | None = None,
    greeting_audio_wait: float = AgentConfig.greeting_audio_wait,
) -> AsyncIterator[tuple[CallJobStandIn, AnsweredCall, ScriptedTTS]]:
    tts = tts or ScriptedTTS(first_audio_delay=0.05)
    job = CallJobStandIn(caller, audio=RecordingAudioOutput())
    voices: list[VoiceChoice] = []

    def build_stack(_config: AgentConfig, voice: VoiceChoice) -> SpeechStack:
        voices.append(voice)
        job.events.append(JobEvent("stack", time.monotonic(), {"voice": voice.voice}))
        return SpeechStack(stt=None, llm=ScriptedLLM(llm_replies), tts=tts, vad=None)

    with fake_job_context(job_metadata=metadata) as ctx:
        setup = setup_from_metadata(ctx.job.metadata, room_name=ctx.job.room.name)
        config = AgentConfig(sip_participant_timeout=0.2, greeting_audio_wait=greeting_audio_wait)
        try:
            answered = await asyncio.wait_for(answer_call(job, setup, config, build_stack=build_stack), HANG_GUARD_S)
            assert job.audio is not None
            await asyncio.wait_for(job.audio.first_frame.wait(), HANG_GUARD_S)
            yield job, answered, tts
        finally:
            await job.aclose()


async def test_the_caller_is_let_in_only_when_the_session_can_speak_the_greeting() -> None:
    async with answering(job_metadata()) as (job, answered, tts):
        assert job.names() == ANSWER_ORDER
        # The stack was built from the plan (the persona's own voice) before the room was joined.
        assert job.event("stack").detail == {"voice": "maya-voice"}
        subscribe = job.event("subscribe").detail
        assert subscribe["identity"] == CALLER.identity
        # When the caller's audio was let in, the session was running the persona
        # (its record is the agent's first act) and had not yet said a word.
        assert subscribe["persona_applied"] is True
        assert subscribe["assistant_messages"] == 0 and subscribe["audio_frames"] == 0
        # The spoken greeting was synthesised while the caller was still ringing, once
        # and whole, from the final plan; its audio is the first the caller hears.
        (request,) = tts.requests
        assert request.text == answered.agent.plan.greeting.text
        assert request.text.startswith("Hi, this is Maya from Acme Dental")
        assert job.event("caller").at <= request.at <= job.event("session_start").at


async def test_a_generated_greeting_follows_the_same_order() -> None:
    persona = acme_persona(greeting_mode=GreetingMode.GREETING_MODE_GENERATED, welcome_message="Greet warmly.")
    async with answering(job_metadata(persona), llm_replies=["Hello, Acme Dental!"]) as (job, _answered, tts):
        assert job.names() == ANSWER_ORDER
        assert [r.text for r in tts.requests] == ["Hello, Acme Dental!"]


async def test_without_a_caller_the_session_still_starts_before_any_audio_is_let_in() -> None:
    async with answering(job_metadata(), caller=None) as (job, answered, _tts):
        assert job.names() == ["stack", "connect", "session_start", "subscribe", "greeting_audio"]
        assert job.event("subscribe").detail["identity"] is None
        assert answered.caller is None


async def test_call_facts_missing_from_the_metadata_come_from_the_callers_attributes() -> None:
    persona = acme_persona(welcome_message="You are calling from {{caller_number}}.")
    async with answering(job_metadata(persona, caller_number="", sip_call_id="")) as (job, answered, tts):
        assert answered.agent.plan.call.caller_number == "+14155550199"
        # The greeting synthesised ahead is the one with the caller's number filled in.
        assert [r.text for r in tts.requests] == ["You are calling from +14155550199."]
        assert job.log_fields["persona_id"] == "crm-42"


async def test_a_slow_tts_does_not_keep_the_phone_ringing() -> None:
    slow = ScriptedTTS(first_audio_delay=0.5)
    async with answering(job_metadata(), tts=slow, greeting_audio_wait=0.05) as (job, answered, tts):
        assert job.names() == ANSWER_ORDER
        # The session started (the call was answered) before the greeting's audio existed,
        # and the greeting still came from the one synthesis begun while ringing.
        assert job.event("session_start").at < tts.audio_produced[0]
        assert [r.text for r in tts.requests] == [answered.agent.plan.greeting.text]


async def test_a_greeting_that_cannot_be_synthesised_ahead_is_synthesised_by_the_session() -> None:
    failing_once = ScriptedTTS(failures=1)
    async with answering(job_metadata(), tts=failing_once) as (job, answered, tts):
        assert job.names() == ANSWER_ORDER
        assert tts.requests[0].text == answered.agent.plan.greeting.text
        # The session's own synthesis (sentence by sentence) came after the caller was let in.
        assert len(tts.requests) > 1
        assert all(r.at >= job.event("subscribe").at for r in tts.requests[1:])
