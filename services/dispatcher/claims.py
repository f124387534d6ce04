"""Per-call claims: who may create the dispatch for a call.

Two layers, for two kinds of concurrency:
- `LocalLocks`: an asyncio lock per claim key, so requests for one call inside this
  process queue up instead of hammering LiveKit and Redis; the queued ones then find
  the dispatch with ListDispatch.
- a `ClaimStore`: `try_acquire` is an atomic "set if absent, with a TTL". In memory for
  one replica; Redis `SET NX PX` when replicas share REDIS_URL. The TTL is the holder's
  own deadline (plus a little), so a holder that dies mid-create blocks the call no
  longer than it could have worked on it anyway.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from services.dispatcher.errors import ClaimStoreUnavailable


def claim_key(room: str, agent_name: str) -> str:
    """One claim per room and agent name — the same scope as the ListDispatch check that
    follows it, so two requests can never both see "no dispatch" for what the check
    treats as one call. (LiveKit's SIP dispatch rules put each call in its own room; a
    claim per SIP call id would let two different call ids in one room both create.)"""
    return f"room:{room}:agent:{agent_name}"


class ClaimStore(Protocol):
    async def try_acquire(self, key: str, ttl: float) -> str | None:
        """Returns a token when the claim was free (now ours), None when someone holds it."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Frees the claim if still ours (after a failure that created nothing)."""
        ...

    async def keep(self, key: str, token: str, ttl: float) -> None:
        """Keeps the claim (if still ours) for `ttl` more seconds, then lets it expire."""
        ...

    async def aclose(self) -> None: ...


class InMemoryClaimStore:
    """One replica: claims live in this process. Expiry uses the loop clock."""

    def __init__(self) -> None:
        self._claims: dict[str, tuple[str, float]] = {}

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _live(self, key: str) -> tuple[str, float] | None:
        held = self._claims.get(key)
        if held is not None and held[1] <= self._now():
            del self._claims[key]
            return None
        return held

    async def try_acquire(self, key: str, ttl: float) -> str | None:
        if self._live(key) is not None:
            return None
        token = secrets.token_hex(8)
        self._claims[key] = (token, self._now() + ttl)
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._live(key)
        if held is not None and held[0] == token:
            del self._claims[key]

    async def keep(self, key: str, token: str, ttl: float) -> None:
        held = self._live(key)
        if held is not None and held[0] == token:
            self._claims[key] = (token, self._now() + ttl)

    async def aclose(self) -> None:
        self._claims.clear()


# Compare-and-act scripts: only the holder (same token) may free or extend its claim,
# so a holder whose TTL already ran out cannot delete the claim of the next holder.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_KEEP = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"


class RedisClaimStore:
    """Replicas sharing Redis: `SET key token NX PX ttl`."""

    def __init__(self, client: aioredis.Redis, key_prefix: str) -> None:
        self._redis = client
        self._prefix = key_prefix

    @classmethod
    def from_url(cls, url: str, key_prefix: str, *, timeout: float = 0.25) -> RedisClaimStore:
        # A claim op is one round trip on a LAN; a Redis that does not answer within
        # `timeout` must not eat the dispatch budget (the whole call rings meanwhile):
        # we answer CLAIM_STORE_UNAVAILABLE fast and the webhook is redelivered.
        return cls(aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout), key_prefix)

    async def try_acquire(self, key: str, ttl: float) -> str | None:
        token = secrets.token_hex(8)
        try:
            ok = await self._redis.set(self._prefix + key, token, nx=True, px=_ms(ttl))
        except RedisError as exc:
            raise ClaimStoreUnavailable(f"claim store (Redis) unreachable: {exc}") from exc
        return token if ok else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._redis.eval(_RELEASE, 1, self._prefix + key, token)
        except RedisError:
            pass  # the TTL frees it anyway

    async def keep(self, key: str, token: str, ttl: float) -> None:
        try:
            await self._redis.eval(_KEEP, 1, self._prefix + key, token, _ms(ttl))
        except RedisError:
            pass  # worst case the claim expires at its original TTL

    async def ping(self) -> bool:
        """Health probe: can we reach Redis at all?"""
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def claim_store_for(redis_url: str | None, key_prefix: str, *, timeout: float = 0.25) -> ClaimStore:
    if redis_url:
        return RedisClaimStore.from_url(redis_url, key_prefix, timeout=timeout)
    return InMemoryClaimStore()


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
