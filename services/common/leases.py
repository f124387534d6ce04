"""Token leases: "set if absent, with a TTL", freed or extended only by the holder.

One primitive behind three features: the dispatcher's per-call claim (who may create
the dispatch), PersonaService's cross-replica fetch lease (who asks the CRM), and the
gateway's event ledger (which webhook already produced a dispatch). In memory for one
replica; Redis `SET NX PX` plus compare-and-act scripts when replicas share Redis.

The TTL is always the holder's own deadline plus a little, so a holder that dies
blocks the key no longer than it could have worked on it anyway.
"""

from __future__ import annotations

import heapq
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

# Only the holder (same token) may free or extend its lease, so a holder whose TTL
# already ran out cannot delete or prolong the lease of the next holder.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_KEEP = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"


class LeaseStoreUnavailable(Exception):
    """The lease store could not be reached; each user decides what that means."""


class TokenLeases(Protocol):
    async def try_acquire(self, key: str, ttl_seconds: float) -> str | None:
        """A token when the lease was free (now ours), None when someone holds it.
        Raises LeaseStoreUnavailable when the store cannot answer."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Frees the lease if it is still ours; never raises (the TTL frees it anyway)."""
        ...

    async def keep(self, key: str, token: str, ttl_seconds: float) -> None:
        """Extends the lease (if still ours) to `ttl_seconds` from now; never raises."""
        ...

    async def is_held(self, key: str) -> bool:
        """Raises LeaseStoreUnavailable when the store cannot answer."""
        ...

    async def aclose(self) -> None: ...


def _new_token() -> str:
    return secrets.token_hex(8)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class InMemoryLeases:
    """One replica: leases live in this process (monotonic clock, injectable for tests).

    Expired leases are swept, not only skipped: every call ends its lease by TTL (most are
    never released), so without a sweep each call ever made would stay a dict entry. A
    heap of (expiry, key) finds the expired ones in O(log n) each; an entry whose lease
    was released, re-acquired or kept since is stale and simply dropped when it surfaces."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[str, tuple[str, float]] = {}
        self._expiries: list[tuple[float, str]] = []

    def _sweep(self, now: float) -> None:
        expiries, leases = self._expiries, self._leases
        while expiries and expiries[0][0] <= now:
            expiry, key = heapq.heappop(expiries)
            held = leases.get(key)
            if held is not None and held[1] == expiry:
                del leases[key]
        # Releases and keeps leave stale heap entries behind; rebuild before they outnumber
        # the live leases, so the heap stays within a small multiple of the dict.
        if len(expiries) > 2 * len(leases) + 64:
            self._expiries = [(expiry, key) for key, (_, expiry) in leases.items()]
            heapq.heapify(self._expiries)

    def _live(self, key: str) -> tuple[str, float] | None:
        now = self._clock()
        self._sweep(now)
        held = self._leases.get(key)
        if held is not None and held[1] <= now:
            del self._leases[key]
            return None
        return held

    def _hold(self, key: str, token: str, ttl_seconds: float) -> None:
        expiry = self._clock() + ttl_seconds
        self._leases[key] = (token, expiry)
        heapq.heappush(self._expiries, (expiry, key))

    async def try_acquire(self, key: str, ttl_seconds: float) -> str | None:
        if self._live(key) is not None:
            return None
        token = _new_token()
        self._hold(key, token, ttl_seconds)
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._live(key)
        if held is not None and held[0] == token:
            del self._leases[key]

    async def keep(self, key: str, token: str, ttl_seconds: float) -> None:
        held = self._live(key)
        if held is not None and held[0] == token:
            self._hold(key, token, ttl_seconds)

    async def is_held(self, key: str) -> bool:
        return self._live(key) is not None

    def __len__(self) -> int:
        return len(self._leases)

    async def aclose(self) -> None:
        self._leases.clear()
        self._expiries.clear()


class RedisLeases:
    """Replicas sharing Redis: `SET <prefix><key> <token> NX PX <ttl>`. The client is
    the caller's (one per process, see redis_client.py); `owns_client` says whether
    `aclose` closes it."""

    def __init__(self, client: aioredis.Redis, key_prefix: str, *, owns_client: bool = True) -> None:
        self.key_prefix = key_prefix
        self._redis = client
        self._owns_client = owns_client

    async def try_acquire(self, key: str, ttl_seconds: float) -> str | None:
        token = _new_token()
        try:
            won = await self._redis.set(self.key_prefix + key, token, nx=True, px=_ms(ttl_seconds))
        except (RedisError, OSError) as exc:
            raise LeaseStoreUnavailable(f"Redis unreachable: {exc}") from exc
        return token if won else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, self.key_prefix + key, token)
        except (RedisError, OSError):
            pass  # the TTL frees it anyway

    async def keep(self, key: str, token: str, ttl_seconds: float) -> None:
        try:
            await self._redis.eval(_KEEP, 1, self.key_prefix + key, token, _ms(ttl_seconds))
        except (RedisError, OSError):
            pass  # worst case the lease expires at its original TTL

    async def is_held(self, key: str) -> bool:
        try:
            return bool(await self._redis.exists(self.key_prefix + key))
        except (RedisError, OSError) as exc:
            raise LeaseStoreUnavailable(f"Redis unreachable: {exc}") from exc

    async def ping(self) -> bool:
        """Health probe: can we reach Redis at all?"""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        if self._owns_client:
            await self._redis.aclose()
