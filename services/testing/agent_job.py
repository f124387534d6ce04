"""A stand-in for the LiveKit side of an agent job (`agent.call_job.CallJob`): a room
holding one SIP caller, that records what the agent did in it and when.

The session is started for real, without a room (as livekit-agents' own tests run
one), its audio going to a `RecordingAudioOutput`; everything else on the path —
planning, the speech stack's session, the PersonaAgent, the greeting — is the
product's. Use it inside `livekit.agents.testing.fake_job_context`, which gives the
session the job context it expects.

Each step is one `JobEvent`, in the order it happened: `connect`, `caller` (the
caller was found, or `caller_missing`), `session_start`, `subscribe` (with what the
session had done by then), and `greeting_audio` (the first frame of the greeting
reached the audio output).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession
from livekit.agents.voice.run_result import RunResult

from agent.call_events import friday_events
from agent.call_job import Caller
from services.testing.speech import RecordingAudioOutput


@dataclass(frozen=True)
class JobEvent:
    name: str
    at: float  # time.monotonic()
    detail: Mapping[str, Any] = field(default_factory=dict)


class CallJobStandIn:
    def __init__(
        self,
        caller: Caller | None = None,
        *,
        audio: RecordingAudioOutput | None = None,
        caller_delay: float = 0.0,
        transfer_error: Exception | None = None,
    ) -> None:
        """`caller` None: no SIP participant ever joins (wait_for_caller blocks until
        the agent gives up). `audio`: where the session speaks; None for a text-only
        session (no TTS)."""
        self.caller = caller
        self.audio = audio
        self.caller_delay = caller_delay
        self.transfer_error = transfer_error  # what transfer_caller raises, as LiveKit failing it would
        self.ended = asyncio.Event()  # the agent hung up or transferred the caller away
        self.events: list[JobEvent] = []
        self.log_fields: dict[str, Any] = {}
        self.session: AgentSession | None = None
        self.started: RunResult | None = None  # what the session did while starting (the greeting)
        self._audio_watch: asyncio.Task[None] | None = None

    def names(self) -> list[str]:
        return [event.name for event in self.events]

    def event(self, name: str) -> JobEvent:
        return next(event for event in self.events if event.name == name)

    def _record(self, name: str, **detail: Any) -> None:
        self.events.append(JobEvent(name, time.monotonic(), detail))

    async def connect(self) -> None:
        self._record("connect")

    async def wait_for_caller(self, identity: str | None) -> Caller:
        if self.caller is None or (identity is not None and identity != self.caller.identity):
            await asyncio.Event().wait()  # nobody joins
        assert self.caller is not None
        await asyncio.sleep(self.caller_delay)
        self._record("caller", identity=self.caller.identity)
        return self.caller

    async def start_session(self, session: AgentSession, agent: Agent, caller: Caller | None) -> None:
        self._record("session_start", caller=caller.identity if caller else None)
        self.session = session
        if self.audio is not None:
            session.output.audio = self.audio
            self._audio_watch = asyncio.create_task(self._watch_audio(self.audio))
        self.started = await session.start(agent, capture_run=True)

    def subscribe_caller_audio(self, caller: Caller | None) -> None:
        session = self.session
        said = (
            [item for item in session.history.items if item.type == "message" and item.role == "assistant"]
            if session
            else []
        )
        self._record(
            "subscribe",
            identity=caller.identity if caller else None,
            # What the session had done when the caller's audio was let in.
            session_started=session is not None,
            persona_applied=bool(session and friday_events(session.history)),
            assistant_messages=len(said),
            audio_frames=len(self.audio.frames) if self.audio else 0,
        )

    def annotate_logs(self, fields: Mapping[str, Any]) -> None:
        self.log_fields.update(fields)

    async def transfer_caller(self, caller: Caller, transfer_to: str) -> None:
        self._record("transfer", identity=caller.identity, transfer_to=transfer_to, **self._speech_so_far())
        if self.transfer_error is not None:
            raise self.transfer_error
        self.ended.set()

    async def end_call(self) -> None:
        self._record("end_call", **self._speech_so_far())
        self.ended.set()

    def _speech_so_far(self) -> dict[str, Any]:
        return {"audio_frames": len(self.audio.frames) if self.audio else 0}

    async def _watch_audio(self, audio: RecordingAudioOutput) -> None:
        await audio.first_frame.wait()
        self.events.append(JobEvent("greeting_audio", audio.frames[0].at))

    async def aclose(self) -> None:
        if self._audio_watch is not None:
            self._audio_watch.cancel()
        if self.session is not None:
            await self.session.aclose()
