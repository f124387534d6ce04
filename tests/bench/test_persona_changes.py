"""`python -m bench.persona_changes` end to end on a few rounds: two real replica
processes on the real Redis, every change reaching both subscribers, in order."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from bench.persona_changes import measure

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_every_change_reaches_both_replicas_subscribers() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the machine runs Redis
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    results = await measure(5, REDIS_URL)
    assert results["delivered"] == {"rounds": 5.0, "both_replicas": 5.0}
    for leg in ("notify -> A", "notify -> B", "published -> B"):
        assert results[leg]["count"] == 5 and results[leg]["p50"] >= 0
