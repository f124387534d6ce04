"""Per-call claims: who may create the dispatch for a call.

Two layers, for two kinds of concurrency:
- `LocalLocks`: an asyncio lock per claim key, so requests for one call inside this
  process queue up instead of hammering LiveKit and Redis; the queued ones then find
  the dispatch with ListDispatch.
- a claim store (`services.common.leases`): `try_acquire` is an atomic "set if absent,
  with a TTL". In memory for one replica; Redis `SET NX PX` when replicas share
  REDIS_URL. The TTL is at least the settle time: a create may be sent any moment after
  the claim is taken, and a holder that dies with its create in flight must keep others
  off the call until that create has landed where ListDispatch shows it.
- `CallClaims`: the claim as the dispatcher takes it. When Redis cannot answer, it is
  taken in this process instead (degraded), counted and logged once per outage: the call
  is answered, and the reconciliation after the create (reconcile.py) heals the double
  that two replicas claiming apart may create. Back to Redis as soon as it answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from services.common.leases import InMemoryLeases, LeaseStoreUnavailable, RedisLeases, TokenLeases
from services.common.redis_client import redis_client
from services.dispatcher import errors
from services.dispatcher.metrics import DispatcherMetrics

logger = logging.getLogger(__name__)


def claim_key(room: str, agent_name: str) -> str:
    """One claim per room and agent name — the same scope as the ListDispatch check that
    follows it, so two requests can never both see "no dispatch" for what the check
    treats as one call. (LiveKit's SIP dispatch rules put each call in its own room; a
    claim per SIP call id would let two different call ids in one room both create.)"""
    return f"room:{room}:agent:{agent_name}"


def claim_store_for(redis_url: str | None, key_prefix: str, *, timeout: float) -> TokenLeases:
    """In memory for one replica; Redis when replicas share `redis_url`. A claim op is
    one round trip on a LAN; a Redis that does not answer within `timeout` must not eat
    the dispatch budget (the caller rings meanwhile): it fails fast, and the call is
    claimed in process instead (`CallClaims`) or refused (CLAIM_STORE_UNAVAILABLE)."""
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
        held = self._locks.get(key)
        lock, users = held if held is not None else (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        acquired = False
        try:
            if users == 0:
                # Nobody holds or waits for this key (the lock is new): acquire() returns at
                # once, so there is nothing to time out (the usual case, one request per call).
                await lock.acquire()
                acquired = True
            else:
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


@dataclass(frozen=True)
class Claim:
    key: str
    token: str
    # Taken in this process only, because the shared store was unreachable: another
    # replica may hold the same call.
    degraded: bool = False


class CallClaims:
    """The per-call claim: in `store`, or in `fallback` (this process) while `store`
    cannot answer. Without a fallback an unreachable store refuses the call."""

    def __init__(self, store: TokenLeases, metrics: DispatcherMetrics, *, fallback: TokenLeases | None) -> None:
        self._store = store
        self._fallback = fallback
        self._metrics = metrics
        self.degraded = False

    @property
    def in_process(self) -> bool:
        """Claims die with this process (no shared store)."""
        return isinstance(self._store, InMemoryLeases)

    async def acquire(self, key: str, ttl_seconds: float) -> Claim | None:
        """The claim when the call was free (now ours), None when someone holds it."""
        try:
            token = await self._store.try_acquire(key, ttl_seconds)
        except LeaseStoreUnavailable as exc:
            if self._fallback is None:
                # Configured for safety over availability: never create without a shared claim.
                raise errors.ClaimStoreUnavailable(f"claim store (Redis) unreachable: {exc}") from exc
            self._enter_degraded(exc)
            token = await self._fallback.try_acquire(key, ttl_seconds)
            if token is None:
                return None
            self._metrics.degraded_claims.inc()
            return Claim(key, token, degraded=True)
        self._leave_degraded()
        return None if token is None else Claim(key, token)

    async def release(self, claim: Claim) -> None:
        await self._holder(claim).release(claim.key, claim.token)

    async def keep(self, claim: Claim, ttl_seconds: float) -> None:
        await self._holder(claim).keep(claim.key, claim.token, ttl_seconds)

    async def aclose(self) -> None:
        await self._store.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()

    def _holder(self, claim: Claim) -> TokenLeases:
        return self._fallback if claim.degraded and self._fallback is not None else self._store

    def _enter_degraded(self, exc: LeaseStoreUnavailable) -> None:
        if not self.degraded:
            self.degraded = True
            self._metrics.claims_degraded.set(1)
            logger.warning(
                "claim store (Redis) unreachable (%s): claiming calls in this process until it is back "
                "(degraded: replicas no longer see each other's claims; duplicate dispatches are removed "
                "after each create)",
                exc,
            )

    def _leave_degraded(self) -> None:
        if self.degraded:
            self.degraded = False
            self._metrics.claims_degraded.set(0)
            logger.info("claim store (Redis) reachable again: calls are claimed in Redis again")
