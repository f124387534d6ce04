"""Several replicas sharing the machine's real Redis: the claim (SET NX with a TTL)
is what keeps them from both creating a dispatch for one call."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import grpc
import pytest
from redis import asyncio as aioredis

from services.dispatcher.claims import claim_key
from services.dispatcher.client import DispatcherCallError
from services.dispatcher.config import ClaimConfig
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, config_for, job_metadata


async def test_two_replicas_racing_on_one_call_make_one_dispatch(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str
) -> None:
    livekit.create_room("race-room")
    livekit.set_latency(0.03)  # widen the window in which both could decide to create
    config = config_for(livekit, redis_prefix=redis_prefix)
    a = await start_dispatcher(config)
    b = await start_dispatcher(config)
    metadata = job_metadata("race-room", sip_call_id="SCL_race")

    responses = await asyncio.gather(
        *(replica.client.dispatch_agent("race-room", AGENT, metadata) for _ in range(10) for replica in (a, b))
    )

    assert len(livekit.dispatches("race-room")) == 1
    assert livekit.create_count() == 1
    assert sum(not r.already_existed for r in responses) == 1
    assert len({r.dispatch.dispatch_id for r in responses}) == 1
    # The replica that lost the claim waited for the winner's dispatch instead of failing.
    waits = sum(r.metric("friday_dispatcher_claim_waits_total") for r in (a, b))
    assert waits >= 1


async def test_claim_outlives_a_successful_create_for_the_settle_time(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    livekit.create_room("settle-room")
    d = await start_dispatcher(config_for(livekit, redis_prefix=redis_prefix))
    metadata = job_metadata("settle-room", sip_call_id="SCL_settle")

    await d.client.dispatch_agent("settle-room", AGENT, metadata)

    ttl_ms = await redis_client.pttl(redis_prefix + claim_key("settle-room", AGENT))
    assert 0 < ttl_ms <= 5000  # settle_seconds=5 in the test config


async def test_claim_is_freed_when_livekit_refused_the_create(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    livekit.create_room("refused-room")
    d = await start_dispatcher(config_for(livekit, redis_prefix=redis_prefix))
    metadata = job_metadata("refused-room", sip_call_id="SCL_refused")
    livekit.fail_next(1, status=400, code="invalid_argument")

    with pytest.raises(DispatcherCallError):
        await d.client.dispatch_agent("refused-room", AGENT, metadata)

    assert await redis_client.exists(redis_prefix + claim_key("refused-room", AGENT)) == 0


async def test_claim_of_a_dead_replica_expires_and_the_call_is_then_dispatched(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    livekit.create_room("orphan-room")
    d = await start_dispatcher(config_for(livekit, redis_prefix=redis_prefix))
    metadata = job_metadata("orphan-room", sip_call_id="SCL_orphan")
    # A replica claimed the call and died before creating anything: only its TTL is left.
    key = redis_prefix + claim_key("orphan-room", AGENT)
    await redis_client.set(key, "dead-replica", px=400)

    response = await d.client.dispatch_agent("orphan-room", AGENT, metadata, timeout=5.0)

    assert response.already_existed is False
    assert len(livekit.dispatches("orphan-room")) == 1
    assert d.metric("friday_dispatcher_claim_waits_total") == 1


async def test_claim_held_without_a_dispatch_until_the_deadline_is_in_progress(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    livekit.create_room("held-room")
    d = await start_dispatcher(config_for(livekit, redis_prefix=redis_prefix))
    metadata = job_metadata("held-room", sip_call_id="SCL_held")
    await redis_client.set(redis_prefix + claim_key("held-room", AGENT), "other-replica", px=60_000)

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("held-room", AGENT, metadata, timeout=0.6)

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DISPATCH_IN_PROGRESS")
    assert caught.value.retryable
    assert livekit.create_count() == 0
    assert any(c.method == "ListDispatch" for c in livekit.calls)  # it polled rather than gave up at once


async def test_unreachable_redis_refuses_when_degraded_claims_are_off(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    # DISPATCHER_DEGRADED_CLAIMS=false: safety over availability, never a claim in process.
    livekit.create_room("no-redis-room")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = config_for(livekit)
    config = replace(
        config,
        claims=ClaimConfig(redis_url=f"redis://127.0.0.1:{closed_port}/0", key_prefix="x:", degraded_fallback=False),
    )
    d = await start_dispatcher(config)

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("no-redis-room", AGENT, job_metadata("no-redis-room"), timeout=3.0)

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "CLAIM_STORE_UNAVAILABLE")
    assert livekit.create_count() == 0


async def test_claim_is_kept_when_a_create_may_have_landed(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    # A 504 comes from a proxy in front of LiveKit: the create may have reached LiveKit.
    # Other requests must keep polling ListDispatch instead of creating at once.
    livekit.create_room("maybe-room")
    d = await start_dispatcher(config_for(livekit, redis_prefix=redis_prefix))
    metadata = job_metadata("maybe-room", sip_call_id="SCL_maybe")

    async def gateway_timeouts_after_the_first_list() -> None:
        # One event loop: the claim's ListDispatch is recorded before the create is sent.
        for _ in range(1_000_000):
            if any(c.method == "ListDispatch" for c in livekit.calls):
                break
            await asyncio.sleep(0)
        livekit.fail_next(10**9, status=504, code="unavailable")

    saboteur = asyncio.create_task(gateway_timeouts_after_the_first_list())
    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("maybe-room", AGENT, metadata, timeout=1.0)
    await saboteur

    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert any(c.method == "CreateDispatch" and c.status == 504 for c in livekit.calls)
    ttl_ms = await redis_client.pttl(redis_prefix + claim_key("maybe-room", AGENT))
    assert 0 < ttl_ms <= 5000  # kept for settle_seconds, not released


async def test_blackholed_redis_answers_claim_store_unavailable_within_the_callers_deadline(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    # With degraded claims off (with them on, see test_degraded_claims.py).
    # A listener that never accepts: the kernel completes the TCP handshake, then nothing
    # ever answers, like a Redis behind a blackholing firewall. A 2 s socket timeout let
    # the claim op outlast this 1 s caller, who then only saw its own DEADLINE_EXCEEDED.
    livekit.create_room("hole-room")
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        port = blackhole.getsockname()[1]
        config = config_for(livekit)
        config = replace(
            config,
            claims=ClaimConfig(redis_url=f"redis://127.0.0.1:{port}/0", key_prefix="x:", degraded_fallback=False),
        )
        d = await start_dispatcher(config)

        with pytest.raises(DispatcherCallError) as caught:
            await d.client.dispatch_agent("hole-room", AGENT, job_metadata("hole-room"), timeout=1.0)

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "CLAIM_STORE_UNAVAILABLE")
    assert livekit.create_count() == 0
