"""Per-call claims: who may create the dispatch for a call.

Two layers, for two kinds of concurrency:
- `LocalLocks`: an asyncio lock per claim key, so requests for one call inside this
  process queue up instead of hammering LiveKit and Redis; the queued ones then find
  the dispatch with ListDispatch.
- a claim store (`services.common.leases`): `try_acquire` is an atomic "set if absent,
  with a TTL". In memory for one replica; Redis `SET NX PX` when replicas share
  REDIS_URL. The TTL is the holder's own deadline (plus a little), so a holder that
  dies mid-create blocks the call no longer than it could have worked on it anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.common.leases import InMemoryLeases, RedisLeases, TokenLeases
from services.common.redis_client import redis_client


def claim_key(room: str, agent_name: str) -> str:
    """One claim per room and agent name — the same scope as the ListDispatch check that
    follows it, so two requests can never both see "no dispatch" for what the check
    treats as one call. (LiveKit's SIP dispatch rules put each call in its own room; a
    claim per SIP call id would let two different call ids in one room both create.)"""
    return f"room:{room}:agent:{agent_name}"


def claim_store_for(redis_url: str | None, key_prefix: str, *, timeout: float) -> TokenLeases:
    """In memory for one replica; Redis when replicas share `redis_url`. A claim op is
    one round trip on a LAN; a Redis that does not answer within `timeout` must not eat
    the dispatch budget (the caller rings meanwhile): the claim is refused fast
    (CLAIM_STORE_UNAVAILABLE) and the webhook redelivered."""
    if redis_url:
        return RedisLeases(redis_client(redis_url, timeout_seconds=timeout), key_prefix)
    return InMemoryLeases()


class LocalLocks:
    """An asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str, deadline: float) -> AsyncIterator[bool]:
        """Yields True holding the lock, or False when `deadline` (loop time) passed first."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        acquired = False
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await lock.acquire()
                acquired = True
            except TimeoutError:
                pass
            yield acquired
        finally:
            if acquired:
                lock.release()
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
