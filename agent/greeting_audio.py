"""The spoken greeting's first audio, synthesised while the caller still hears ringing.

livekit/sip answers the call once the agent's audio track is published, which
happens when the session starts (agent/call_job.py). A greeting synthesised only
then leaves the caller in silence for the TTS's whole time to first audio. A
spoken greeting's words are known before the session exists, so its synthesis
starts first, the session is started once the first audio has arrived (or after
`wait` seconds, so a slow TTS cannot keep the phone ringing), and the greeting
plays from what was fetched. A generated greeting needs the LLM first and is not
prefetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from livekit import rtc

logger = logging.getLogger(__name__)


class PrefetchedAudio:
    """A TTS synthesis read ahead into a queue; iterate it for the frames, in order.

    Owned by whoever plays it: `session.say(text, audio=…)` closes it when the
    speech ends, interrupted or not."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._frames: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._first_frame = asyncio.Event()
        self.frames_read = 0
        self.error: BaseException | None = None
        self._reader = asyncio.create_task(self._read(), name="greeting_audio_prefetch")

    async def _read(self) -> None:
        try:
            async for synthesized in self._stream:
                self._frames.put_nowait(synthesized.frame)
                self.frames_read += 1
                self._first_frame.set()
        except Exception as exc:  # noqa: BLE001 - reported by prefetch_greeting or ends the greeting early
            self.error = exc
        finally:
            self._frames.put_nowait(None)
            self._first_frame.set()

    async def wait_for_first_frame(self, timeout: float) -> bool:
        """True once a frame (or the end of the synthesis) is there; False after `timeout`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_frame.wait(), timeout)
        return self._first_frame.is_set()

    def __aiter__(self) -> AsyncIterator[rtc.AudioFrame]:
        return self

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await self._frames.get()
        if frame is None:
            self._frames.put_nowait(None)  # stays ended for any later reader
            raise StopAsyncIteration
        return frame

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        with contextlib.suppress(Exception):
            await self._stream.aclose()


async def prefetch_greeting(tts: Any, text: str, *, wait: float) -> PrefetchedAudio | None:
    """Start synthesising `text` and wait up to `wait` seconds for its first frame.

    None when there is nothing to prefetch (no TTS, no text) or the synthesis failed
    before any audio: the greeting is then synthesised by the session as usual.
    """
    if tts is None or not text.strip():
        return None
    audio = PrefetchedAudio(tts.synthesize(text))
    ready = await audio.wait_for_first_frame(wait)
    if audio.error is not None and audio.frames_read == 0:
        logger.warning("could not synthesise the greeting ahead; the session will: %s", audio.error)
        await audio.aclose()
        return None
    if not ready:
        logger.warning("the greeting's first audio took over %.1f s; answering without waiting for it", wait)
    return audio
