"""Calls answered with an action instead of a conversation: a campaign's
closed-hours message ("we open at nine") that then hangs up, or a message that
then transfers the caller ("after hours, forwarded to the on-call line").

The action's message is the greeting: it is spoken as written, in the persona's
voice, with its audio fetched before the session starts, exactly like a spoken
welcome (agent/call_job.py says why that order matters), and it cannot be
interrupted — there is nobody to talk to afterwards. No LLM turn ever runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from livekit.agents import Agent

from agent.call_events import record_friday_event
from agent.greeting_audio import PrefetchedAudio
from friday.persona.v1.campaign_pb2 import CallAction, CallActionKind

logger = logging.getLogger(__name__)

CALL_ACTION = "call_action"


def action_name(action: CallAction) -> str:
    return CallActionKind.Name(action.kind).removeprefix("CALL_ACTION_KIND_").lower()


class CallActionAgent(Agent):
    def __init__(
        self,
        action: CallAction,
        *,
        perform: Callable[[], Awaitable[None]],
        before_message: Callable[[], None] | None = None,
        message_audio: PrefetchedAudio | None = None,
        trace_id: str = "",
    ) -> None:
        """`perform` hangs up or transfers once the message has played out;
        `before_message` lets the caller's audio in (the worker's job)."""
        # The instructions are never used (no LLM turn), but an Agent needs some.
        super().__init__(instructions="Say the message you are given, then end.")
        self.action = action
        self._perform = perform
        self._before_message = before_message
        self._message_audio = message_audio
        self._trace_id = trace_id

    async def on_enter(self) -> None:
        event = {
            "event": CALL_ACTION,
            "action": action_name(self.action),
            "transfer_to": self.action.transfer_to,
            "trace_id": self._trace_id,
        }
        record_friday_event(event, self.session.history)
        if self._before_message is not None:
            self._before_message()
        audio, self._message_audio = self._message_audio, None
        if audio is None:
            speech = self.session.say(self.action.message, allow_interruptions=False)
        else:
            speech = self.session.say(self.action.message, audio=audio, allow_interruptions=False)
        await speech.wait_for_playout()
        if audio is not None:
            await audio.aclose()  # a session without audio output never read it
        await self._perform()
