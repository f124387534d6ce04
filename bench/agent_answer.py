"""`python -m bench.agent_answer`: how long the caller waits between the call being
answered and the first sound of the greeting.

Each call runs the agent's real `answer_call` (planning, AgentSession, PersonaAgent,
the greeting) in a livekit-agents fake job context, against the job stand-in of
services/testing/agent_job.py, with services/testing's scripted TTS (its first audio
frame `--tts-first-audio-ms` after each request, as a provider's first byte would
come) and scripted LLM; the session speaks into a recording audio output. Two gaps
per call, from the stand-in's timestamps:

- subscribe → first greeting frame: from the moment the caller's audio is let in
  (the agent's last step before it greets) to the first frame of the greeting
  reaching the session's audio output;
- session start → first greeting frame: from the start of the session, which is when
  LiveKit's RoomIO publishes the agent's audio track — what livekit/sip answers the
  call on (agent/call_job.py);

and what the caller pays for them in ringing: caller found → session start, the time
the agent spends, after it found the caller, before it starts the session (reading
a spoken greeting's first audio ahead, agent/greeting_audio.py).

No LiveKit server and no network: the figures are the agent's own time plus the
scripted TTS (and, for a generated greeting, LLM) latency, nothing of the media path.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import time
from collections.abc import Sequence

from livekit.agents.testing import fake_job_context

from agent.call_job import Caller
from agent.config import AgentConfig
from agent.job_setup import setup_from_metadata
from agent.speech_stack import SpeechStack
from agent.voice_selection import VoiceChoice
from agent.worker import answer_call
from bench.stats import fmt, summarize_ms
from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.persona_pb2 import GreetingMode, PersonaSource
from services.common.default_persona import default_persona
from services.common.job_metadata import encode
from services.testing.agent_job import CallJobStandIn
from services.testing.speech import RecordingAudioOutput, ScriptedLLM, ScriptedTTS

CALLER = Caller("sip_+14155550199", {"sip.phoneNumber": "+14155550199", "sip.trunkPhoneNumber": "+14155550100"})
HANG_GUARD_S = 30.0


def metadata(mode: GreetingMode.ValueType) -> str:
    persona = default_persona()
    persona.greeting_mode = mode
    call = CallFacts(dialed_number="+14155550100", caller_number="+14155550199", room="bench-room")
    return encode(
        AgentJobMetadata(persona=persona, persona_source=PersonaSource.PERSONA_SOURCE_CRM, call=call, trace_id="bench")
    )


async def one_call(job_metadata: str, tts_first_audio: float) -> tuple[float, float, float]:
    """(subscribe → first greeting frame, session start → first greeting frame, caller
    found → session start), in seconds."""
    tts = ScriptedTTS(first_audio_delay=tts_first_audio)

    def build_stack(_config: AgentConfig, _voice: VoiceChoice) -> SpeechStack:
        return SpeechStack(stt=None, llm=ScriptedLLM(["Hello, thanks for calling. How can I help?"]), tts=tts, vad=None)

    audio = RecordingAudioOutput()
    job = CallJobStandIn(CALLER, audio=audio)
    with fake_job_context(job_metadata=job_metadata) as ctx:
        setup = setup_from_metadata(ctx.job.metadata, room_name=ctx.job.room.name)
        try:
            await asyncio.wait_for(answer_call(job, setup, AgentConfig(), build_stack=build_stack), HANG_GUARD_S)
            await asyncio.wait_for(audio.first_frame.wait(), HANG_GUARD_S)
        finally:
            await job.aclose()
    first_frame, session_start = audio.frames[0].at, job.event("session_start").at
    return first_frame - job.event("subscribe").at, first_frame - session_start, session_start - job.event("caller").at


async def measure(calls: int, warmup: int, tts_delays_ms: Sequence[float]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    modes = (("spoken", GreetingMode.GREETING_MODE_SPOKEN), ("generated", GreetingMode.GREETING_MODE_GENERATED))
    for mode_name, mode in modes:
        text = metadata(mode)
        for delay_ms in tts_delays_ms:
            for _ in range(warmup):
                await one_call(text, delay_ms / 1000)
            samples = [await one_call(text, delay_ms / 1000) for _ in range(calls)]
            rows.append(
                {
                    "greeting": mode_name,
                    "tts_first_audio_ms": delay_ms,
                    "subscribe_to_audio": summarize_ms([sample[0] for sample in samples]),
                    "session_start_to_audio": summarize_ms([sample[1] for sample in samples]),
                    "caller_to_session_start": summarize_ms([sample[2] for sample in samples]),
                }
            )
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| greeting | scripted TTS first audio | subscribe → first greeting frame | "
        "session start → first greeting frame | caller found → session start (more ringing) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = []
        for key in ("subscribe_to_audio", "session_start_to_audio", "caller_to_session_start"):
            s = row[key]
            assert isinstance(s, dict)
            cells.append(f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['max'])} ms")
        lines.append(f"| {row['greeting']} | {fmt(row['tts_first_audio_ms'])} ms | {' | '.join(cells)} |")
    lines.append("")
    lines.append("Each cell: p50 / p95 / max over the measured calls.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_answer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30, help="measured calls per row (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="calls run first and not counted (default 3)")
    parser.add_argument(
        "--tts-first-audio-ms",
        default="0,300",
        help="comma-separated scripted TTS latencies to first audio, one row each (default 0,300)",
    )
    args = parser.parse_args(argv)
    delays = [float(value) for value in args.tts_first_audio_ms.split(",") if value.strip()]
    # livekit-agents warns per session about the VAD-less test stack; the figures are the output.
    logging.basicConfig(level=logging.ERROR)
    started = time.monotonic()
    rows = asyncio.run(measure(args.calls, args.warmup, delays))
    print(f"agent answer timing · {args.calls} calls per row · Python {platform.python_version()} · "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
