"""The livekit-agents Agent that carries out a PersonaPlan in a live session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from livekit.agents import Agent, RunContext, function_tool
from livekit.agents.llm import ToolFlag

from agent.call_events import record_persona_applied
from agent.greeting import GreetingKind
from agent.greeting_audio import PrefetchedAudio
from agent.hangup import hang_up
from agent.persona_plan import PersonaPlan

logger = logging.getLogger(__name__)

END_CALL_DESCRIPTION = (
    "End the phone call. Use it once the caller's request is handled and they have nothing "
    "more, or when they clearly say goodbye. Do not say goodbye yourself: this tool says the "
    "closing line and then hangs up. Do not use it if the caller wants to hold or be transferred."
)


class PersonaAgent(Agent):
    def __init__(
        self,
        plan: PersonaPlan,
        *,
        before_greeting: Callable[[], None] | None = None,
        greeting_audio: PrefetchedAudio | None = None,
    ) -> None:
        """`before_greeting` runs once the session can speak, right before the greeting:
        the worker lets the caller's audio in there (agent/call_job.py).
        `greeting_audio`: the spoken greeting, already being synthesised
        (agent/greeting_audio.py); without it the session synthesises the greeting."""
        super().__init__(instructions=plan.instructions)
        self.plan = plan
        self._before_greeting = before_greeting
        self._greeting_audio = greeting_audio
        self._ending = False

    async def on_enter(self) -> None:
        # The record comes first so a transcript shows the persona before its first line.
        record_persona_applied(self.plan, self.session.history)
        if self._before_greeting is not None:
            self._before_greeting()
        greeting = self.plan.greeting
        if greeting.kind is GreetingKind.SPOKEN:
            audio, self._greeting_audio = self._greeting_audio, None
            if audio is None:
                self.session.say(greeting.text)
                return
            speech = self.session.say(greeting.text, audio=audio)
            # A session without audio output never reads it: the synthesis must still end.
            speech.add_done_callback(lambda _: _close_soon(audio))
        else:
            self.session.generate_reply(instructions=greeting.text)

    # IGNORE_ON_ENTER: the model must not be able to hang up while it is greeting.
    @function_tool(name="end_call", description=END_CALL_DESCRIPTION, flags=ToolFlag.IGNORE_ON_ENTER)
    async def end_call(self, context: RunContext) -> None:
        if self._ending:
            return None
        self._ending = True
        context.disallow_interruptions()
        # Let whatever the model said before calling the tool finish first.
        await context.wait_for_playout()
        closing = context.session.say(self.plan.closing_message, allow_interruptions=False)
        # Not awaited: the closing speech is scheduled after this tool's turn, so
        # awaiting it here would wait on ourselves.
        closing.add_done_callback(lambda _: hang_up(context.session, trace_id=self.plan.trace_id))
        # None: no tool reply, so the model adds nothing after the closing line.
        return None


_closing: set[asyncio.Task[None]] = set()


def _close_soon(audio: PrefetchedAudio) -> None:
    task = asyncio.create_task(audio.aclose())
    # Held until done: the event loop keeps only weak references to tasks.
    _closing.add(task)
    task.add_done_callback(_closing.discard)
