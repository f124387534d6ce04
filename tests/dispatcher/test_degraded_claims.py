"""Redis down for good: DispatcherService claims calls in its own process (degraded),
counted and logged once per outage, so calls are answered; two replicas claiming
apart may both create, and the reconciliation after the create leaves one. When Redis
answers again, claims are shared in Redis again."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import replace

import grpc
import pytest
from redis import asyncio as aioredis

from services.dispatcher.claims import claim_key
from services.dispatcher.client import DispatcherCallError
from services.dispatcher.config import DispatcherConfig
from services.testing.livekit_api import LiveKitStandIn
from services.testing.redis_process import RedisProcess, RedisUnavailableError
from tests.dispatcher.conftest import AGENT, config_for, job_metadata

DEGRADED = "friday_dispatcher_degraded_claims_total"
DEGRADED_NOW = "friday_dispatcher_claims_degraded"
REMOVED = "friday_dispatcher_duplicate_dispatches_removed_total"
OUTAGE_LINE = "claiming calls in this process"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_redis(lk: LiveKitStandIn, url: str, prefix: str = "degraded:") -> DispatcherConfig:
    config = config_for(lk)
    return replace(config, claims=replace(config.claims, redis_url=url, key_prefix=prefix, reconcile_interval=0.05))


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Waits for `condition` (an upper bound for a stuck run, not a timing assumption)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"still waiting for {what} after {timeout}s")
        await asyncio.sleep(0.02)


async def test_unreachable_redis_claims_in_process_counted_and_logged_once(
    livekit: LiveKitStandIn, start_dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.dispatcher")
    d = await start_dispatcher(_with_redis(livekit, f"redis://127.0.0.1:{_closed_port()}/0"))
    rooms = [f"degraded-room-{i}" for i in range(3)]
    for room in rooms:
        livekit.create_room(room)

    for room in rooms:
        response = await d.client.dispatch_agent(room, AGENT, job_metadata(room), timeout=3.0)
        assert not response.already_existed

    assert [len(livekit.dispatches(room)) for room in rooms] == [1, 1, 1]
    assert d.metric(DEGRADED) == 3
    assert d.metric(DEGRADED_NOW) == 1
    outage_lines = [r for r in caplog.records if OUTAGE_LINE in r.getMessage()]
    assert len(outage_lines) == 1 and outage_lines[0].levelno == logging.WARNING


async def test_blackholed_redis_still_dispatches_within_the_callers_deadline(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    # A listener that never answers: each claim op costs its 0.25 s timeout, not the call.
    livekit.create_room("hole-degraded-room")
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        d = await start_dispatcher(_with_redis(livekit, f"redis://127.0.0.1:{blackhole.getsockname()[1]}/0"))

        response = await d.client.dispatch_agent(
            "hole-degraded-room", AGENT, job_metadata("hole-degraded-room"), timeout=2.0
        )

    assert response.job.job_id
    assert d.metric(DEGRADED) == 1


async def test_claims_go_back_to_redis_once_it_answers_again(
    livekit: LiveKitStandIn, start_dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.dispatcher")
    try:
        redis = RedisProcess()
    except RedisUnavailableError as exc:
        pytest.skip(str(exc))
    await redis.start()
    try:
        d = await start_dispatcher(_with_redis(livekit, redis.url, prefix="back:"))
        for room in ("during-room", "after-room"):
            livekit.create_room(room)
        await redis.kill()
        await d.client.dispatch_agent("during-room", AGENT, job_metadata("during-room"), timeout=3.0)
        assert d.metric(DEGRADED_NOW) == 1

        await redis.start()
        await d.client.dispatch_agent("after-room", AGENT, job_metadata("after-room"), timeout=3.0)

        client = aioredis.Redis.from_url(redis.url)
        try:
            assert await client.pttl("back:" + claim_key("after-room", AGENT)) > 0  # a Redis claim again
        finally:
            await client.aclose()
    finally:
        await redis.kill()
    assert d.metric(DEGRADED) == 1
    assert d.metric(DEGRADED_NOW) == 0
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_two_replicas_claiming_apart_end_with_one_dispatch(livekit: LiveKitStandIn, start_dispatcher) -> None:
    # Both replicas claim in process. A's create is slow to land: B, seeing nothing yet,
    # creates too. Whichever lands later is deleted, by the replica that sees both.
    livekit.create_room("apart-room")
    config = _with_redis(livekit, f"redis://127.0.0.1:{_closed_port()}/0")
    a = await start_dispatcher(config)
    b = await start_dispatcher(config)
    livekit.hold_next(1, method="CreateDispatch")
    first = asyncio.create_task(a.client.dispatch_agent("apart-room", AGENT, job_metadata("apart-room"), timeout=1.0))
    await _until(lambda: livekit.held == 1, "A's create to reach LiveKit")

    response = await b.client.dispatch_agent("apart-room", AGENT, job_metadata("apart-room"), timeout=3.0)
    assert not response.already_existed
    with pytest.raises(DispatcherCallError) as caught:
        await first  # A's caller gave up; its create is still in flight
    assert caught.value.code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)

    livekit.release_held()
    await _until(lambda: livekit.create_count() == 2, "A's create to land")
    await _until(lambda: len(livekit.dispatches("apart-room")) == 1, "the later dispatch to be removed")

    assert livekit.peak_dispatches("apart-room") == 2
    assert [d.id for d in livekit.dispatches("apart-room")] == [response.dispatch.dispatch_id]
    assert a.metric(REMOVED) + b.metric(REMOVED) == 1
    assert a.metric(DEGRADED) + b.metric(DEGRADED) == 2
