"""Token leases: "set if absent, with a TTL", freed or extended only by the holder.

One primitive behind three features: the dispatcher's per-call claim (who may create
the dispatch), PersonaService's cross-replica fetch lease (who asks the CRM), and the
gateway's event ledger (which webhook already produced a dispatch). In memory for one
replica; Redis `SET NX PX` plus compare-and-act scripts when replicas share Redis.

The TTL is always the holder's own deadline plus a little, so a holder that dies
blocks the key no longer than it could have worked on it anyway.
"""

from __future__ import annotations

import secrets
import time
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
    """One replica: leases live in this process (monotonic clock)."""

    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> tuple[str, float] | None:
        held = self._leases.get(key)
        if held is not None and held[1] <= time.monotonic():
            del self._leases[key]
            return None
        return held

    async def try_acquire(self, key: str, ttl_seconds: float) -> str | None:
        if self._live(key) is not None:
            return None
        token = _new_token()
        self._leases[key] = (token, time.monotonic() + ttl_seconds)
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._live(key)
        if held is not None and held[0] == token:
            del self._leases[key]

    async def keep(self, key: str, token: str, ttl_seconds: float) -> None:
        held = self._live(key)
        if held is not None and held[0] == token:
            self._leases[key] = (token, time.monotonic() + ttl_seconds)

    async def is_held(self, key: str) -> bool:
        return self._live(key) is not None

    def __len__(self) -> int:
        return len(self._leases)

    async def aclose(self) -> None:
        self._leases.clear()


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
