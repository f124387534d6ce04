"""Persona changes reaching a call in progress.

While a call lasts, the worker follows its dialed number on PersonaService's
WatchPersonas stream. A new version is applied the way a person would take a note
mid-call: the agent's instructions and closing line are re-planned from the new
persona (prompt variables rendered with this call's facts again) and take effect
from the next turn — speech in progress is not interrupted, and the voice never
changes mid-call. A campaign keeps the variant the call started with. Each change is
a `persona_updated` event (old → new version) in the session history and the logs.

Following is best effort: losing the stream, a service that is down, or a change the
agent cannot use never affects the call (it goes on with the persona it has); the
stream is resumed from the last event with a growing pause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from agent.call_events import record_friday_event
from agent.job_setup import JobSetup
from agent.persona_agent import PersonaAgent
from agent.persona_plan import plan_persona
from agent.voice_selection import VoiceCatalog
from friday.persona.v1.persona_pb2 import Persona, PersonaSource

logger = logging.getLogger(__name__)

PERSONA_UPDATED = "persona_updated"
_RETRY_FIRST_SECONDS = 0.5
_RETRY_MAX_SECONDS = 15.0


class PersonaChanges(Protocol):
    def watch(self, numbers: list[str], *, resume_token: str) -> AsyncIterator[Any]:
        """WatchPersonasResponse events for `numbers`, from after `resume_token`."""
        ...

    async def current(self, number: str) -> Persona | None:
        """The number's persona now (None when it has none)."""
        ...


class PersonaFollower:
    def __init__(self, changes: PersonaChanges, setup: JobSetup, catalog: VoiceCatalog, agent: PersonaAgent) -> None:
        self._changes = changes
        self._setup = setup
        self._catalog = catalog
        self._agent = agent
        self.applied = 0  # changes applied so far (tests and logs)
        self.subscribed = asyncio.Event()  # the stream is in place: no later change is missed

    async def run(self) -> None:
        """Follows until cancelled (the call ended); never raises anything else."""
        number = self._setup.call.dialed_number
        token, pause = "", _RETRY_FIRST_SECONDS
        while True:
            try:
                first = True
                async for event in self._changes.watch([number], resume_token=token):
                    if first and event.HasField("keep_alive") and not token:
                        # Subscribed from "now": a change between the dispatch and now would be
                        # missed, so compare with what the service answers at this point, once.
                        await self._catch_up(number)
                    first = False
                    self.subscribed.set()
                    token = event.resume_token or token
                    pause = _RETRY_FIRST_SECONDS
                    if event.HasField("change") and event.change.normalized_number == number:
                        await self._apply(event.change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the call must outlive any trouble with the stream
                logger.info("persona updates for %s unavailable (%s); retrying in %.1fs", number, exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_MAX_SECONDS)

    async def _catch_up(self, number: str) -> None:
        if self._setup.selection is not None:
            return  # a campaign call keeps its variant; selection again could pick another
        persona = await self._changes.current(number)
        if persona is not None:
            await self._use(persona)

    async def _apply(self, change: Any) -> None:
        persona = self._persona_in(change)
        if persona is not None:
            await self._use(persona)

    async def _use(self, persona: Persona) -> None:
        old = self._agent.plan
        if persona.version and persona.version == old.persona_version:
            return
        self._setup = dataclasses.replace(self._setup, persona=persona)
        new = plan_persona(self._setup, self._catalog)
        # The caller has heard the voice and the greeting; only what comes next changes.
        new = dataclasses.replace(new, voice=old.voice, greeting=old.greeting)
        await self._agent.update_instructions(new.instructions)
        self._agent.plan = new
        self.applied += 1
        event = {
            "event": PERSONA_UPDATED,
            "persona_id": new.persona_id,
            "old_version": old.persona_version,
            "new_version": new.persona_version,
            "trace_id": new.trace_id,
        }
        session = getattr(self._agent, "session", None)
        if session is not None:
            record_friday_event(event, session.history)
        else:  # pragma: no cover - the agent has a session once the call is answered
            logger.info(PERSONA_UPDATED, extra=event)

    def _persona_in(self, change: Any) -> Persona | None:
        """The persona this call should speak with now, or None to keep the current one:
        a removed number keeps its persona for the rest of the call, and a campaign keeps
        the variant the call started with (an action or a vanished variant changes nothing)."""
        if change.removed:
            logger.info(
                "the persona of %s was removed at the source; this call keeps its own", change.normalized_number
            )
            return None
        if change.HasField("persona"):
            return change.persona if self._setup.selection is None else None
        if not change.HasField("campaign") or self._setup.selection is None:
            return None
        variant = next((v for v in change.campaign.variants if v.variant_id == self._setup.selection.variant_id), None)
        if variant is None or not variant.HasField("persona"):
            logger.info("the call's campaign variant is gone or not a persona now; keeping the current persona")
            return None
        return variant.persona


class PersonaServiceChanges:
    """`PersonaChanges` on a PersonaService (PersonaClient.watch_personas)."""

    def __init__(self, target: str, *, token: str | None = None) -> None:
        self._target = target
        self._token = token

    async def watch(self, numbers: list[str], *, resume_token: str) -> AsyncIterator[Any]:
        from services.persona.client import PersonaClient

        async with PersonaClient(self._target, bearer_token=self._token) as client:
            async for event in client.watch_personas(numbers, resume_token=resume_token):
                yield event

    async def current(self, number: str) -> Persona | None:
        from services.persona.client import PersonaClient

        async with PersonaClient(self._target, bearer_token=self._token) as client:
            reply = await client.get_persona(number, allow_default=True)
        return reply.persona if reply.source != PersonaSource.PERSONA_SOURCE_DEFAULT else None
