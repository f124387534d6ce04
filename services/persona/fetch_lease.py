"""Single-flight across replicas: at most one PersonaService replica asks the CRM
for a number at a time.

The in-process single-flight (lookup.py) coalesces concurrent lookups inside one
replica. With several replicas behind a round-robin balancer, two calls to the
same hotline land on two replicas at once, and both would miss the shared cache
and ask the CRM. The lease closes that gap: the replica that wins `SET NX PX`
on `<prefix><number>` fetches and stores the persona in the shared cache; the
others poll the shared cache until the persona appears or the lease is gone
(the holder failed, or died and its TTL ran out), then take over.

The TTL is the holder's own deadline plus a little, so a replica killed mid-fetch
blocks the number no longer than it could have worked on it anyway.
"""

from __future__ import annotations

import secrets
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

# Compare-and-delete: a holder whose TTL already ran out must not free the next holder's lease.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class LeaseUnavailable(Exception):
    """The lease store could not be reached (each replica then fetches on its own)."""


class FetchLease(Protocol):
    async def try_acquire(self, key: str, ttl_seconds: float) -> str | None:
        """A token when the lease was free (now ours), None when another replica holds it."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Frees the lease if it is still ours."""
        ...

    async def is_held(self, key: str) -> bool: ...

    async def aclose(self) -> None: ...


class RedisFetchLease:
    def __init__(self, url: str, *, key_prefix: str, timeout_seconds: float = 0.25) -> None:
        self.key_prefix = key_prefix
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, retry_on_timeout=False
        )

    async def try_acquire(self, key: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(8)
        try:
            won = await self._redis.set(self.key_prefix + key, token, nx=True, px=max(1, int(ttl_seconds * 1000)))
        except (RedisError, OSError) as exc:
            raise LeaseUnavailable(f"redis lease failed: {exc}") from exc
        return token if won else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, self.key_prefix + key, token)
        except (RedisError, OSError):
            pass  # the TTL frees it anyway

    async def is_held(self, key: str) -> bool:
        try:
            return bool(await self._redis.exists(self.key_prefix + key))
        except (RedisError, OSError) as exc:
            raise LeaseUnavailable(f"redis lease check failed: {exc}") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()
