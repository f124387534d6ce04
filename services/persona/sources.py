"""The one small interface behind which personas come from (CRM or persona file),
so the lookup logic never imports httpx."""

from __future__ import annotations

from typing import Protocol, TypeAlias

from friday.persona.v1.campaign_pb2 import Campaign
from friday.persona.v1.persona_pb2 import Persona
from services.persona.numbers import DialedNumber

# What a source answers for a number: one persona, or a campaign of variants that
# is reduced to one persona (or action) per call, after the cache.
SourceAnswer: TypeAlias = Persona | Campaign


class SourceUnavailable(Exception):
    """The source failed (after its retries). `kind` labels the metrics:
    transport, timeout, http_5xx, http_429, http_4xx, malformed, deadline,
    error (anything unforeseen, wrapped by the lookup)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class PersonaSourceBackend(Protocol):
    # True for a remote source worth caching; False for the in-memory persona file.
    cacheable: bool

    async def fetch(self, number: DialedNumber, deadline: float) -> SourceAnswer | None:
        """The persona or campaign for `number`, or None when the source has none (404).
        `deadline` is an absolute `loop.time()`; never run past it. Raises
        SourceUnavailable when the source failed."""
        ...

    def default_persona(self) -> Persona | None:
        """A source-specific default (the persona file's `default`), or None."""
        ...

    async def probe(self) -> bool:
        """Is the source reachable right now? (for health)"""
        ...

    async def aclose(self) -> None: ...
