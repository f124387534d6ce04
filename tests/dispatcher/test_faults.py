"""LiveKit misbehaving and callers sending nonsense: retries inside the deadline, and
every failure mapped to the gRPC code + ErrorInfo reason the contract promises."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from services.dispatcher.client import DispatcherCallError
from services.dispatcher.config import LiveKitConfig, RetryConfig
from services.dispatcher.server import SERVICE_FULL_NAME
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, FAST_RETRY, RunningDispatcher, config_for, job_metadata

RETRIES = "friday_dispatcher_livekit_retries_total"


def total_retries(d: RunningDispatcher) -> float:
    return sum(d.metric(RETRIES, {"method": m}) for m in ("ListRooms", "ListDispatch", "CreateDispatch"))


async def test_two_503s_then_success_after_retries(livekit: LiveKitStandIn, dispatcher: RunningDispatcher) -> None:
    livekit.create_room("retry-room")
    livekit.fail_next(2, status=503, code="unavailable")

    response = await dispatcher.client.dispatch_agent("retry-room", AGENT, job_metadata("retry-room"))

    assert response.already_existed is False
    assert len(livekit.dispatches("retry-room")) == 1
    assert [c.status for c in livekit.calls[:2]] == [503, 503]
    assert total_retries(dispatcher) == 2


async def test_503_forever_is_unavailable_before_the_callers_deadline(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    livekit.create_room("down-room")
    # Attempts are not what stops us here: only the caller's 3 s deadline is (long enough
    # that the service's answer margin, not a loaded machine's stalls, decides who speaks).
    patient = RetryConfig(max_attempts=10_000, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=1.0)
    d = await start_dispatcher(config_for(livekit, retry=patient))
    livekit.fail_next(10**9, status=503, code="unavailable")

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("down-room", AGENT, job_metadata("down-room"), timeout=3.0)

    # UNAVAILABLE, not DEADLINE_EXCEEDED: the service answered within the caller's deadline.
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.reason == "LIVEKIT_UNAVAILABLE"
    assert total_retries(d) > 1
    assert livekit.create_count() == 0
    assert d.metric("friday_dispatcher_dispatches_total", {"outcome": "failed", "code": "UNAVAILABLE"}) == 1

    # LiveKit answered every attempt, so nothing is in flight and the claim was freed:
    # once LiveKit is back, the very next request creates the dispatch.
    livekit.fail_next(0)
    response = await d.client.dispatch_agent("down-room", AGENT, job_metadata("down-room"), timeout=2.0)
    assert response.already_existed is False
    assert len(livekit.dispatches("down-room")) == 1


async def test_wrong_livekit_secret_is_failed_precondition_not_unauthenticated(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    livekit.create_room("key-room")
    config = config_for(livekit)
    config = replace(config, livekit=LiveKitConfig(livekit.url, livekit.api_key, "x" * 40))
    d = await start_dispatcher(config)

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("key-room", AGENT, job_metadata("key-room"))

    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.reason == "LIVEKIT_REJECTED_CREDENTIALS"
    assert total_retries(d) == 0  # a 401 never gets better by asking again
    assert livekit.create_count() == 0
    # The service cannot do its job, and its health says so; the process itself still serves.
    health = health_pb2_grpc.HealthStub(d.client.channel)
    own = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_FULL_NAME), timeout=2)
    overall = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    assert own.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert overall.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("status", "twirp_code", "grpc_code", "reason"),
    [
        (404, "not_found", grpc.StatusCode.NOT_FOUND, "ROOM_NOT_FOUND"),
        (400, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, "LIVEKIT_REJECTED_REQUEST"),
        (412, "failed_precondition", grpc.StatusCode.FAILED_PRECONDITION, "LIVEKIT_FAILED_PRECONDITION"),
        (403, "permission_denied", grpc.StatusCode.FAILED_PRECONDITION, "LIVEKIT_REJECTED_CREDENTIALS"),
        (501, "unimplemented", grpc.StatusCode.FAILED_PRECONDITION, "LIVEKIT_MISCONFIGURED"),
    ],
)
async def test_definitive_livekit_errors_map_to_codes_without_retry(
    livekit: LiveKitStandIn,
    dispatcher: RunningDispatcher,
    status: int,
    twirp_code: str,
    grpc_code: grpc.StatusCode,
    reason: str,
) -> None:
    livekit.create_room("mapped-room")
    livekit.fail_next(1, status=status, code=twirp_code)

    with pytest.raises(DispatcherCallError) as caught:
        await dispatcher.client.dispatch_agent("mapped-room", AGENT, job_metadata("mapped-room"))

    assert (caught.value.code, caught.value.reason) == (grpc_code, reason)
    assert total_retries(dispatcher) == 0
    # ListRooms and the claim's ListDispatch go out side by side; neither is sent again.
    methods = [c.method for c in livekit.calls]
    assert sorted(methods) == ["ListDispatch", "ListRooms"]


async def test_rate_limited_forever_is_resource_exhausted(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("busy-room")
    livekit.fail_next(10**9, status=429, code="resource_exhausted")

    with pytest.raises(DispatcherCallError) as caught:
        await dispatcher.client.dispatch_agent("busy-room", AGENT, job_metadata("busy-room"), timeout=2.0)

    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # ListRooms and ListDispatch run side by side, each retried up to its attempts.
    for method in ("ListRooms", "ListDispatch"):
        assert dispatcher.metric(RETRIES, {"method": method}) == FAST_RETRY.max_attempts - 1


async def test_livekit_url_that_is_not_livekit_is_misconfigured(livekit: LiveKitStandIn, start_dispatcher) -> None:
    config = config_for(livekit)
    d = await start_dispatcher(
        replace(config, livekit=LiveKitConfig(livekit.url + "/not-livekit", livekit.api_key, livekit.api_secret))
    )

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("url-room", AGENT, job_metadata("url-room"))

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LIVEKIT_MISCONFIGURED")


async def test_livekit_not_listening_is_unavailable(livekit: LiveKitStandIn, start_dispatcher) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = config_for(livekit)
    d = await start_dispatcher(
        replace(config, livekit=LiveKitConfig(f"http://127.0.0.1:{closed_port}", livekit.api_key, livekit.api_secret))
    )

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("gone-room", AGENT, job_metadata("gone-room"), timeout=2.0)

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "LIVEKIT_UNAVAILABLE")
    assert total_retries(d) >= 1


async def test_create_that_timed_out_but_landed_is_found_not_repeated(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    livekit.create_room("slow-room")
    # The create attempt times out on our side while LiveKit still completes it: the
    # retry must look (ListDispatch) before creating again.
    slow_retry = RetryConfig(max_attempts=5, initial_backoff=1.0, max_backoff=1.0, attempt_timeout=0.3)
    d = await start_dispatcher(config_for(livekit, retry=slow_retry))

    async def slow_down_only_the_create() -> None:
        # Everything runs on this event loop: once the claim's ListDispatch is recorded,
        # the CreateDispatch is the next request the stand-in receives.
        for _ in range(1_000_000):
            if any(c.method == "ListDispatch" for c in livekit.calls):
                break
            await asyncio.sleep(0)
        livekit.set_latency(0.6)
        await asyncio.sleep(0.15)
        livekit.set_latency(0.0)

    saboteur = asyncio.create_task(slow_down_only_the_create())
    response = await d.client.dispatch_agent("slow-room", AGENT, job_metadata("slow-room"))
    await saboteur

    assert len(livekit.dispatches("slow-room")) == 1
    assert response.dispatch.dispatch_id == livekit.dispatches("slow-room")[0].id
    assert response.already_existed is False
    assert [c.method for c in livekit.calls].count("CreateDispatch") == 1


def _huge_metadata(room: str) -> AgentJobMetadata:
    metadata = job_metadata(room)
    metadata.persona.personality = "x" * (600 * 1024)
    return metadata


@pytest.mark.parametrize(
    ("room", "agent_name", "metadata", "reason", "field"),
    [
        ("big-room", AGENT, _huge_metadata("big-room"), "METADATA_TOO_LARGE", "metadata"),
        ("", AGENT, job_metadata(""), "INVALID_REQUEST", "room"),
        ("r" * 257, AGENT, AgentJobMetadata(), "INVALID_REQUEST", "room"),
        ("ctl\x00room", AGENT, AgentJobMetadata(), "INVALID_REQUEST", "room"),
        ("ok-room", "", job_metadata("ok-room"), "INVALID_REQUEST", "agent_name"),
        ("ok-room", "friday ai agent", job_metadata("ok-room"), "INVALID_REQUEST", "agent_name"),
        ("ok-room", AGENT, job_metadata("another-room"), "INVALID_REQUEST", "metadata.call.room"),
    ],
)
async def test_invalid_requests_are_refused_without_calling_livekit(
    livekit: LiveKitStandIn,
    dispatcher: RunningDispatcher,
    room: str,
    agent_name: str,
    metadata: AgentJobMetadata,
    reason: str,
    field: str,
) -> None:
    with pytest.raises(DispatcherCallError) as caught:
        await dispatcher.client.dispatch_agent(room, agent_name, metadata)

    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.reason == reason
    assert field in caught.value.message
    assert livekit.calls == []


async def test_list_and_cancel_validate_too(livekit: LiveKitStandIn, dispatcher: RunningDispatcher) -> None:
    for call in (
        dispatcher.client.list_dispatches(""),
        dispatcher.client.cancel_dispatch("room", ""),
        dispatcher.client.cancel_dispatch("", "AD_x"),
    ):
        with pytest.raises(DispatcherCallError) as caught:
            await call
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert livekit.calls == []
