"""A CreateDispatch whose outcome we could not read (timeout, dropped connection, proxy
5xx, unreadable 200) may still land in LiveKit: it is never sent again within one
request, and the claim outlives the request so no other request creates meanwhile."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from redis import asyncio as aioredis

from friday.dispatcher.v1 import dispatcher_service_pb2 as pb
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from services.dispatcher.claims import claim_key
from services.dispatcher.client import DispatcherCallError
from services.dispatcher.config import RetryConfig
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, config_for, job_metadata

ONE_SECOND_ATTEMPTS = RetryConfig(max_attempts=6, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=1.0)


def creates(livekit: LiveKitStandIn) -> int:
    return [c.method for c in livekit.calls].count("CreateDispatch")


async def test_create_that_times_out_and_lands_late_is_not_sent_again(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    # The first create outlives its 1 s attempt and lands at 1.3 s: after the moment a
    # single "did it land?" ListDispatch before a retry would have looked.
    livekit.create_room("late-room")
    d = await start_dispatcher(config_for(livekit, retry=ONE_SECOND_ATTEMPTS))
    livekit.delay_next(1, 1.3, method="CreateDispatch")

    response = await d.client.dispatch_agent("late-room", AGENT, job_metadata("late-room"), timeout=6.0)
    await livekit.wait_idle()  # the slow first create has had its chance to land

    assert creates(livekit) == 1
    assert len(livekit.dispatches("late-room")) == 1
    assert response.dispatch.dispatch_id == livekit.dispatches("late-room")[0].id
    assert response.already_existed is False  # it was this request's create that landed


async def test_create_that_lands_after_the_deadline_answers_unavailable_and_keeps_the_claim(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    livekit.create_room("slow-room")
    d = await start_dispatcher(config_for(livekit, retry=ONE_SECOND_ATTEMPTS, redis_prefix=redis_prefix))
    livekit.delay_next(1, 2.5, method="CreateDispatch")  # lands a second after our deadline

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("slow-room", AGENT, job_metadata("slow-room"), timeout=1.5)

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "LIVEKIT_UNAVAILABLE")
    assert caught.value.retryable
    # The claim stays for the settle time (5 s in the test config), well past the request's
    # own TTL, so no other request creates while LiveKit's answer is still out.
    ttl_ms = await redis_client.pttl(redis_prefix + claim_key("slow-room", AGENT))
    assert 2000 < ttl_ms <= 5000
    await livekit.wait_idle()  # the create lands, late
    assert creates(livekit) == 1

    # The redelivery finds the dispatch once it landed instead of creating another.
    response = await d.client.dispatch_agent("slow-room", AGENT, job_metadata("slow-room"), timeout=5.0)
    assert response.already_existed is True
    assert creates(livekit) == 1
    assert len(livekit.dispatches("slow-room")) == 1


async def test_unreadable_200_to_a_create_is_looked_up_not_reported_as_unknown(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    livekit.create_room("garbled-room")
    d = await start_dispatcher(config_for(livekit))
    livekit.garble_next(1, method="CreateDispatch")

    response = await d.client.dispatch_agent("garbled-room", AGENT, job_metadata("garbled-room"))
    await livekit.wait_idle()

    assert creates(livekit) == 1
    assert response.dispatch.dispatch_id == livekit.dispatches("garbled-room")[0].id
    assert response.already_existed is False


async def test_unreadable_200_to_a_list_is_internal_not_unknown(livekit: LiveKitStandIn, start_dispatcher) -> None:
    livekit.create_room("garbled-room")
    d = await start_dispatcher(config_for(livekit))
    livekit.garble_next(1, method="ListDispatch")

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.list_dispatches("garbled-room")

    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert caught.value.reason == "LIVEKIT_ERROR"


async def test_503_with_a_twirp_body_is_unambiguous_and_retried_with_a_fresh_create(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    livekit.create_room("twirp-room")
    d = await start_dispatcher(config_for(livekit))

    async def fail_the_create() -> None:
        # One event loop: the claim's ListDispatch is recorded before the create is sent.
        for _ in range(1_000_000):
            if any(c.method == "ListDispatch" for c in livekit.calls):
                break
            await asyncio.sleep(0)
        livekit.fail_next(1, status=503, code="unavailable")

    saboteur = asyncio.create_task(fail_the_create())
    response = await d.client.dispatch_agent("twirp-room", AGENT, job_metadata("twirp-room"))
    await saboteur

    assert [(c.method, c.status) for c in livekit.calls][:4] == [
        ("ListRooms", 200),
        ("ListDispatch", 200),
        ("CreateDispatch", 503),
        ("CreateDispatch", 200),
    ]
    assert response.already_existed is False


async def _claim_ttl_once_settled(redis_client: aioredis.Redis, key: str, *, at_most_ms: int) -> int:
    """The claim's TTL once the cancelled request's (shielded) claim update ran: polls a
    bounded number of rounds, then returns whatever TTL is there."""
    ttl_ms = await redis_client.pttl(key)
    for _ in range(200):
        if ttl_ms <= at_most_ms:
            break
        await asyncio.sleep(0.01)
        ttl_ms = await redis_client.pttl(key)
    return ttl_ms


async def test_caller_cancelling_during_the_create_keeps_the_claim_for_the_settle_time(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    # grpc.aio cancels the handler when the caller goes away (its deadline fired first).
    # The create is then still in flight and may land: the claim must not lapse at its
    # short TTL (10 s budget + 1 s here), but stay the settle time (5 s) from now.
    livekit.create_room("gone-room")
    patient = RetryConfig(max_attempts=6, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=8.0)
    d = await start_dispatcher(config_for(livekit, retry=patient, redis_prefix=redis_prefix))
    livekit.delay_next(1, 1.0, method="CreateDispatch")
    stub = pb_grpc.DispatcherServiceStub(d.client.channel)
    request = pb.DispatchAgentRequest(room="gone-room", agent_name=AGENT, metadata=job_metadata("gone-room"))

    call = stub.DispatchAgent(request, timeout=30.0)
    for _ in range(1_000_000):
        if any(c.method == "ListDispatch" for c in livekit.calls) and livekit.in_flight:
            break
        await asyncio.sleep(0.001)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    key = redis_prefix + claim_key("gone-room", AGENT)
    ttl_ms = await _claim_ttl_once_settled(redis_client, key, at_most_ms=5000)
    assert 0 < ttl_ms <= 5000
    await livekit.wait_idle()
    assert len(livekit.dispatches("gone-room")) == 1


async def test_caller_cancelling_before_any_create_releases_the_claim(
    livekit: LiveKitStandIn, start_dispatcher, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    livekit.create_room("early-room")
    d = await start_dispatcher(config_for(livekit, redis_prefix=redis_prefix))
    livekit.delay_next(1, 1.0, method="ListDispatch")
    stub = pb_grpc.DispatcherServiceStub(d.client.channel)
    request = pb.DispatchAgentRequest(room="early-room", agent_name=AGENT, metadata=job_metadata("early-room"))

    call = stub.DispatchAgent(request, timeout=30.0)
    for _ in range(1_000_000):
        if livekit.in_flight:
            break
        await asyncio.sleep(0.001)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    key = redis_prefix + claim_key("early-room", AGENT)
    for _ in range(200):
        if not await redis_client.exists(key):
            break
        await asyncio.sleep(0.01)
    assert await redis_client.exists(key) == 0
    await livekit.wait_idle()
    assert livekit.create_count() == 0
