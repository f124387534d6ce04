"""Token leases, in memory and on the machine's real Redis: exclusive, expiring,
freed and extended only by their holder; in memory, expired leases are swept (a clock
injected, so 100k calls' TTLs pass without sleeping)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from services.common.leases import InMemoryLeases, LeaseStoreUnavailable, RedisLeases
from services.common.redis_client import redis_client
from services.dispatcher.claims import claim_key

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


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CALLS = 100_000


async def test_100k_expired_claims_are_swept_not_kept() -> None:
    clock = FakeClock()
    leases = InMemoryLeases(clock)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(CALLS):  # one claim per call, none released: they end by TTL
            assert await leases.try_acquire(claim_key(f"call-{i}", "friday-ai-agent"), 3.0) is not None
            clock.now += 0.0001  # 100k calls in 10 s: a few thousand live at any moment
        live_during, _ = tracemalloc.get_traced_memory()
        assert len(leases) < CALLS / 2  # the ones older than the TTL went while calls came in

        clock.now += 3.0  # the last claim's TTL passes
        assert not await leases.is_held("room:anything:agent:friday-ai-agent")
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(leases) == 0
    assert after < live_during / 4, (live_during, after)


async def test_released_and_kept_claims_leave_no_trail() -> None:
    clock = FakeClock()
    leases = InMemoryLeases(clock)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(CALLS):
            key = claim_key(f"call-{i}", "friday-ai-agent")
            token = await leases.try_acquire(key, 30.0)
            assert token is not None
            await leases.keep(key, token, 30.0)
            await leases.release(key, token)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(leases) == 0
    # Released long before their TTL: nothing of the 100k calls may remain (a trail of
    # them would be several MB).
    assert held < 100_000, held
