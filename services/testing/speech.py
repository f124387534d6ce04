"""Scripted speech models and an audio sink, for driving a real livekit-agents
`AgentSession` without a model, a network or a loudspeaker.

livekit-agents ships no fake LLM or TTS; these are the smallest real ones:
- `ScriptedLLM`: each `chat()` pops the next scripted reply (text, or a tool call)
  and records the chat context it was given, so tests can read the instructions
  the agent used;
- `ScriptedTTS`: speaks any text as silence, its first audio frame coming
  `first_audio_delay` seconds after the request, as a provider's first byte would;
- `RecordingAudioOutput`: the session's audio output, keeping every frame with the
  monotonic time it arrived and reporting each segment played out at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import llm, tts
from livekit.agents.llm import ChatChunk, ChoiceDelta, FunctionToolCall
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit.agents.voice import io

Reply = str | FunctionToolCall


def tool_call(name: str, arguments: str = "{}", call_id: str = "call_1") -> FunctionToolCall:
    return FunctionToolCall(name=name, arguments=arguments, call_id=call_id)


class ScriptedLLM(llm.LLM):
    def __init__(self, replies: list[Reply] | None = None, *, default: str = "Okay.") -> None:
        super().__init__()
        self._replies = list(replies or [])
        self._default = default
        self.requests: list[llm.ChatContext] = []

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        self.requests.append(chat_ctx.copy())
        reply = self._replies.pop(0) if self._replies else self._default
        return _ScriptedStream(self, reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)

    def system_prompt(self, index: int = 0) -> str:
        """The system/instructions text of the index-th request."""
        for item in self.requests[index].items:
            if item.type == "message" and item.role == "system":
                return item.text_content or ""
        return ""


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, reply: Reply, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._reply = reply

    async def _run(self) -> None:
        if isinstance(self._reply, FunctionToolCall):
            delta = ChoiceDelta(role="assistant", tool_calls=[self._reply])
        else:
            delta = ChoiceDelta(role="assistant", content=self._reply)
        self._event_ch.send_nowait(ChatChunk(id="scripted", delta=delta))


class ScriptedTTSFailure(RuntimeError):
    pass


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    at: float  # time.monotonic() when it was asked for


class ScriptedTTS(tts.TTS):
    SAMPLE_RATE = 24_000
    FRAME_MS = 20

    def __init__(
        self, *, first_audio_delay: float = 0.0, seconds_per_character: float = 0.01, failures: int = 0
    ) -> None:
        """`failures`: how many requests, from the first, fail before any audio (with an
        error the TTS base class does not retry)."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False), sample_rate=self.SAMPLE_RATE, num_channels=1
        )
        self.first_audio_delay = first_audio_delay
        self.seconds_per_character = seconds_per_character
        self.failures = failures
        self.requests: list[SynthesisRequest] = []
        self.audio_produced: list[float] = []  # time.monotonic() each request's audio was produced

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "friday-testing"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.requests.append(SynthesisRequest(text, time.monotonic()))
        return _ScriptedSpeech(tts=self, input_text=text, conn_options=conn_options)


class _ScriptedSpeech(tts.ChunkedStream):
    def __init__(self, *, tts: ScriptedTTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._scripted = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        scripted = self._scripted
        output_emitter.initialize(
            request_id="scripted",
            sample_rate=scripted.SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=scripted.FRAME_MS,
        )
        await asyncio.sleep(scripted.first_audio_delay)
        if scripted.failures > 0:
            scripted.failures -= 1
            raise ScriptedTTSFailure("scripted TTS failure")
        seconds = max(scripted.FRAME_MS / 1000, len(self.input_text) * scripted.seconds_per_character)
        scripted.audio_produced.append(time.monotonic())
        output_emitter.push(bytes(2 * int(seconds * scripted.SAMPLE_RATE)))  # 16-bit silence
        output_emitter.flush()


@dataclass(frozen=True)
class CapturedFrame:
    frame: rtc.AudioFrame
    at: float  # time.monotonic() when the session handed it over


class RecordingAudioOutput(io.AudioOutput):
    def __init__(self) -> None:
        super().__init__(label="recording", capabilities=io.AudioOutputCapabilities(pause=False))
        self.frames: list[CapturedFrame] = []
        self.first_frame = asyncio.Event()
        self._segment_seconds = 0.0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._segment_seconds:
            self.on_playback_started(created_at=time.time())
        self.frames.append(CapturedFrame(frame, time.monotonic()))
        self._segment_seconds += frame.duration
        self.first_frame.set()

    def flush(self) -> None:
        super().flush()
        if self._segment_seconds:
            played, self._segment_seconds = self._segment_seconds, 0.0
            self.on_playback_finished(playback_position=played, interrupted=False)

    def clear_buffer(self) -> None:
        if self._segment_seconds:
            played, self._segment_seconds = self._segment_seconds, 0.0
            self.on_playback_finished(playback_position=played, interrupted=True)
