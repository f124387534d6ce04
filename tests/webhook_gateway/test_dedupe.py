"""The event ledger that turns redelivered webhooks into no-ops."""

from __future__ import annotations

import logging
import uuid

import pytest
from redis import asyncio as aioredis

from services.webhook_gateway.dedupe import InProcessEventLedger, RedisEventLedger

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_in_process_ledger_remembers_until_ttl() -> None:
    ledger = InProcessEventLedger(ttl_seconds=600, max_entries=10)
    assert not await ledger.seen("EV_1")
    await ledger.remember("EV_1")
    assert await ledger.seen("EV_1")

    expired = InProcessEventLedger(ttl_seconds=0, max_entries=10)
    await expired.remember("EV_1")
    assert not await expired.seen("EV_1")


async def test_in_process_ledger_is_bounded_and_drops_the_oldest() -> None:
    ledger = InProcessEventLedger(ttl_seconds=600, max_entries=1000)
    for i in range(100_000):
        await ledger.remember(f"EV_{i}")
    assert len(ledger) == 1000
    assert not await ledger.seen("EV_0")
    assert await ledger.seen("EV_99999")


@pytest.fixture
async def redis_prefix():
    prefix = f"test:gateway:{uuid.uuid4().hex}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    yield prefix
    keys = [key async for key in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_ledger_is_shared_between_replicas(redis_prefix: str) -> None:
    first = RedisEventLedger.from_url(REDIS_URL, redis_prefix, ttl_seconds=600, max_entries=10)
    second = RedisEventLedger.from_url(REDIS_URL, redis_prefix, ttl_seconds=600, max_entries=10)
    try:
        await first.remember("EV_shared")
        assert await second.seen("EV_shared")
        assert not await second.seen("EV_other")
    finally:
        await first.close()
        await second.close()


async def test_redis_down_falls_back_to_the_in_process_ledger() -> None:
    ledger = RedisEventLedger.from_url("redis://127.0.0.1:1/0", "test:", ttl_seconds=600, max_entries=10)
    try:
        assert not await ledger.seen("EV_1")
        await ledger.remember("EV_1")
        assert await ledger.seen("EV_1")
    finally:
        await ledger.close()


async def test_redis_down_for_good_is_logged_once_not_per_webhook(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="services.webhook_gateway.dedupe")
    ledger = RedisEventLedger.from_url("redis://127.0.0.1:1/0", "test:", ttl_seconds=600, max_entries=10)
    try:
        for i in range(20):
            assert not await ledger.seen(f"EV_{i}")
            await ledger.remember(f"EV_{i}")
    finally:
        await ledger.close()
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
