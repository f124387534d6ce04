"""Remembers which webhook events already produced a dispatch (the call flow asks
before doing any work, and tells it once the dispatch exists).

LiveKit redelivers the same bytes (same event id) after a lost reply, and
several webhook URLs deliver the same event more than once. An event is
remembered only after its dispatch exists, so a redelivery after a 503 is still
processed. Concurrent duplicates that race past this check are harmless: the
DispatcherService guarantees one dispatch per call; this only saves the work.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

from services.common.leases import LeaseStoreUnavailable, RedisLeases
from services.common.redis_client import redis_client

logger = logging.getLogger(__name__)


class EventLedger(Protocol):
    async def seen(self, event_id: str) -> bool: ...
    async def remember(self, event_id: str) -> None: ...
    async def close(self) -> None: ...


class InProcessEventLedger:
    """TTL + size bound, so a flood of distinct event ids cannot grow memory without limit."""

    def __init__(self, ttl_seconds: float, max_entries: int) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._expiry_by_id: OrderedDict[str, float] = OrderedDict()

    async def seen(self, event_id: str) -> bool:
        expiry = self._expiry_by_id.get(event_id)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._expiry_by_id[event_id]
            return False
        return True

    async def remember(self, event_id: str) -> None:
        self._expiry_by_id[event_id] = time.monotonic() + self._ttl
        self._expiry_by_id.move_to_end(event_id)
        self._evict()

    def _evict(self) -> None:
        now = time.monotonic()
        # Entries are in insertion order and share one TTL, so expired ones sit at the front.
        while self._expiry_by_id:
            oldest_id, oldest_expiry = next(iter(self._expiry_by_id.items()))
            if oldest_expiry >= now and len(self._expiry_by_id) <= self._max_entries:
                break
            del self._expiry_by_id[oldest_id]

    def __len__(self) -> int:
        return len(self._expiry_by_id)

    async def close(self) -> None:
        return None


class RedisEventLedger:
    """Shared by every gateway replica: an event is a lease held for the TTL. Falls
    back to the in-process ledger when Redis is unreachable: a duplicate then costs a
    ListDispatch, never a second agent."""

    def __init__(self, leases: RedisLeases, ttl_seconds: float, fallback: InProcessEventLedger) -> None:
        self._leases = leases
        self._ttl = ttl_seconds
        self._fallback = fallback
        self._redis_down = False  # so an outage is logged once, not on every webhook

    @classmethod
    def from_url(cls, url: str, prefix: str, ttl_seconds: float, max_entries: int) -> RedisEventLedger:
        # 0.2 s: a webhook answer must not wait long on a Redis that is gone.
        leases = RedisLeases(redis_client(url, timeout_seconds=0.2), prefix + "event:")
        return cls(leases, ttl_seconds, InProcessEventLedger(ttl_seconds, max_entries))

    async def seen(self, event_id: str) -> bool:
        try:
            held = await self._leases.is_held(event_id)
        except LeaseStoreUnavailable as exc:
            self._down(exc)
            return await self._fallback.seen(event_id)
        self._up()
        return held

    async def remember(self, event_id: str) -> None:
        await self._fallback.remember(event_id)
        try:
            await self._leases.try_acquire(event_id, self._ttl)
        except LeaseStoreUnavailable as exc:
            self._down(exc)
            return
        self._up()

    def _down(self, exc: LeaseStoreUnavailable) -> None:
        if not self._redis_down:
            self._redis_down = True
            logger.warning("redis unavailable for webhook dedupe; in-process ledger until it is back: %s", exc)

    def _up(self) -> None:
        if self._redis_down:
            self._redis_down = False
            logger.info("redis reachable again for webhook dedupe")

    async def close(self) -> None:
        await self._leases.aclose()
