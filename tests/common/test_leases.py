"""Token leases, in memory and on the machine's real Redis: exclusive, expiring,
freed and extended only by their holder."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from services.common.leases import InMemoryLeases, LeaseStoreUnavailable, RedisLeases
from services.common.redis_client import redis_client

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_leases() -> AsyncIterator[RedisLeases]:
    client = redis_client(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"friday:test:leases:{uuid.uuid4().hex}:"
    leases = RedisLeases(client, prefix, owns_client=False)
    try:
        yield leases
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_in_memory_leases_are_exclusive_and_expire() -> None:
    leases = InMemoryLeases()
    token = await leases.try_acquire("k", 0.05)
    assert token is not None
    assert await leases.try_acquire("k", 0.05) is None
    await leases.release("k", "someone-else's-token")
    assert await leases.try_acquire("k", 0.05) is None
    await asyncio.sleep(0.06)
    assert not await leases.is_held("k")
    assert await leases.try_acquire("k", 10) is not None


async def test_in_memory_keep_extends_only_the_holders_lease() -> None:
    leases = InMemoryLeases()
    token = await leases.try_acquire("k", 0.05)
    assert token is not None
    await leases.keep("k", "not-the-holder", 10)
    await leases.keep("k", token, 10)
    await asyncio.sleep(0.06)
    assert await leases.is_held("k")


async def test_redis_release_frees_only_our_own_lease(redis_leases: RedisLeases) -> None:
    first = await redis_leases.try_acquire("+1", 30)
    assert first is not None
    assert await redis_leases.try_acquire("+1", 30) is None
    await redis_leases.release("+1", "someone-elses-token")
    assert await redis_leases.is_held("+1")
    await redis_leases.release("+1", first)
    assert not await redis_leases.is_held("+1")


async def test_redis_keep_extends_only_the_holders_lease(redis_leases: RedisLeases) -> None:
    token = await redis_leases.try_acquire("k", 0.2)
    assert token is not None
    await redis_leases.keep("k", "not-the-holder", 30)
    await redis_leases.keep("k", token, 30)
    await asyncio.sleep(0.3)
    assert await redis_leases.is_held("k")


async def test_unreachable_redis_is_reported_as_lease_store_unavailable() -> None:
    leases = RedisLeases(redis_client("redis://127.0.0.1:1/0", timeout_seconds=0.2), "x:")
    try:
        for attempt in (leases.try_acquire("+1", 1), leases.is_held("+1")):
            with pytest.raises(LeaseStoreUnavailable):
                await attempt
        await leases.release("+1", "token")  # never raises: the TTL frees it anyway
        await leases.keep("+1", "token", 1)
        assert not await leases.ping()
    finally:
        await leases.aclose()
