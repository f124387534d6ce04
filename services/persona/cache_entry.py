"""What a cache holds for one number: a persona or campaign (or the fact that the CRM has none)
and when it was fetched. Freshness is decided by the caller, so one entry can be
fresh, stale-but-servable or expired without the backend knowing the policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.persona.sources import SourceAnswer


@dataclass(frozen=True)
class CacheEntry:
    answer: SourceAnswer | None  # None: the source said "no persona" (negative entry)
    fetched_at: float  # wall-clock seconds (time.time()), comparable across replicas

    @property
    def negative(self) -> bool:
        return self.answer is None

    def age(self, now: float) -> float:
        return max(0.0, now - self.fetched_at)


@dataclass(frozen=True)
class CachePolicy:
    """How long entries are fresh (`ttl_seconds`, `negative_ttl_seconds` for "no
    persona"), and how long a persona may still be served once it is not."""

    ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 30.0
    max_stale_seconds: float = 86_400.0
    last_known_good_max_entries: int = 10_000
    # A fresh hit this far into the TTL starts a background refresh (refresh-ahead);
    # 1.0 turns it off.
    refresh_ahead_fraction: float = 0.8

    def refresh_ahead_after(self) -> float:
        return self.ttl_seconds * self.refresh_ahead_fraction if self.refresh_ahead_fraction < 1 else float("inf")

    def fresh_for(self, entry: CacheEntry) -> float:
        return self.negative_ttl_seconds if entry.negative else self.ttl_seconds

    def keep_for(self, entry: CacheEntry) -> float:
        """How long a backend keeps the entry: a persona for as long as it may be served stale."""
        return self.negative_ttl_seconds if entry.negative else max(self.ttl_seconds, self.max_stale_seconds)


def answer_version(answer: SourceAnswer | None) -> str:
    """The version a cache entry holds ("" for "no persona")."""
    return answer.version if answer is not None else ""


class CacheUnavailable(Exception):
    """The backend could not be reached (Redis down)."""


class CacheBackend(Protocol):
    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, keep_seconds: float) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def aclose(self) -> None: ...
