"""A create that lands after its request failed, when no redelivery comes: the dispatcher
itself tells CallHistoryService (a real one, in process) of the dispatch once a worker
serves it, under the event id the gateway would have used for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from friday.calls.v1.call_pb2 import CallEvent, CallEventKind
from services.calls.client import CallsClient
from services.calls.config import CallsConfig, StoreConfig
from services.calls.server import build_server as build_calls
from services.dispatcher.client import DispatcherCallError
from services.dispatcher.config import CallHistoryConfig, DispatcherConfig, RetryConfig
from services.grpc_runtime import GrpcServer, ServerConfig
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, RunningDispatcher, config_for, job_metadata

ONE_SECOND_ATTEMPTS = RetryConfig(max_attempts=6, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=1.0)
RECORD_WAIT_SECONDS = 60.0  # a cap for a stuck test, not a margin: the poll ends when the record is there


@pytest.fixture
async def calls(tmp_path: Path) -> AsyncIterator[GrpcServer]:
    config = CallsConfig(
        store=StoreConfig(database_url=f"sqlite:///{tmp_path / 'calls.db'}"), sweep_interval_seconds=3600
    )
    async with build_calls(config, ServerConfig(host="127.0.0.1", port=0)) as server:
        yield server


def reporting(livekit: LiveKitStandIn, calls: GrpcServer, settle_seconds: float = 10.0) -> DispatcherConfig:
    """Reporting to `calls`; the landing is looked for `settle_seconds` after the failure (it comes
    a second after it: the rest is room for a loaded machine)."""
    config = config_for(livekit, retry=ONE_SECOND_ATTEMPTS, calls=CallHistoryConfig(target=calls.address))
    return replace(config, claims=replace(config.claims, reconcile_interval=0.2, settle_seconds=settle_seconds))


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(RECORD_WAIT_SECONDS):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def ringing(calls: GrpcServer, room: str) -> None:
    """The caller's SIP join, as the gateway records it when the webhook arrives."""
    join = CallEvent(event_id=f"EV_join_{room}", kind=CallEventKind.CALL_EVENT_KIND_SIP_JOINED, room=room)
    join.sip.sip_call_id, join.sip.dialed_number = "SCL_test", "+911234567890"
    join.occurred_at.GetCurrentTime()
    async with CallsClient(calls.address) as history:
        await history.record(join)


async def fail_while_create_is_in_flight(
    livekit: LiveKitStandIn, start_dispatcher, config: DispatcherConfig, room: str
):
    livekit.create_room(room)
    d = await start_dispatcher(config)
    livekit.delay_next(1, 2.5, method="CreateDispatch")  # lands a second after the request gave up
    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent(room, AGENT, job_metadata(room), timeout=1.5)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAVAILABLE, "LIVEKIT_UNAVAILABLE")
    return d


async def test_a_create_that_lands_after_its_request_failed_is_reported_to_the_call_history(
    livekit: LiveKitStandIn, start_dispatcher, calls: GrpcServer
) -> None:
    await ringing(calls, "late-room")
    d = await fail_while_create_is_in_flight(livekit, start_dispatcher, reporting(livekit, calls), "late-room")

    async with CallsClient(calls.address) as history:

        async def recorded() -> bool:
            return bool((await history.get_call("late-room")).call.dispatch.dispatch_id)

        await until(recorded)
        found = await history.get_call("late-room")
    (landed,) = livekit.dispatches("late-room")
    facts = found.call.dispatch
    assert facts.dispatch_id == landed.id
    assert facts.job_id == landed.state.jobs[0].id  # a worker took it: the caller has an agent
    assert facts.persona_source == "PERSONA_SOURCE_UNSPECIFIED"  # as the request's metadata said
    assert facts.persona_version.startswith("sha256:") and not facts.already_existed
    _, event = found.events
    # The gateway's id for this call's dispatch: its report after a redelivery is the same event.
    assert (event.event_id, event.kind) == ("dispatch:EV_test", CallEventKind.CALL_EVENT_KIND_DISPATCHED)
    assert d.metric("friday_dispatcher_late_landings_total", {"outcome": "reported"}) == 1


async def test_the_gateways_report_of_the_same_dispatch_is_the_same_event(
    livekit: LiveKitStandIn, start_dispatcher, calls: GrpcServer
) -> None:
    await ringing(calls, "both-room")
    d = await fail_while_create_is_in_flight(livekit, start_dispatcher, reporting(livekit, calls), "both-room")
    await until(lambda: _counted(d, "reported"))
    async with CallsClient(calls.address) as history:
        gateways = CallEvent(
            event_id="dispatch:EV_test", kind=CallEventKind.CALL_EVENT_KIND_DISPATCHED, room="both-room"
        )
        gateways.dispatch.dispatch_id = "AD_gateway"
        gateways.dispatch.already_existed = True
        gateways.occurred_at.GetCurrentTime()
        await history.record(gateways)
        found = await history.get_call("both-room")
    assert len(found.events) == 2  # the join, and the dispatch recorded once, by whichever came first
    assert found.call.dispatch.dispatch_id == livekit.dispatches("both-room")[0].id


async def test_a_late_dispatch_no_worker_takes_is_not_reported(
    livekit: LiveKitStandIn, start_dispatcher, calls: GrpcServer
) -> None:
    livekit.workers.set_absent(AGENT)  # the dispatch lands, and no agent ever comes
    await ringing(calls, "unserved-room")
    d = await fail_while_create_is_in_flight(
        livekit, start_dispatcher, reporting(livekit, calls, settle_seconds=3.0), "unserved-room"
    )
    await until(lambda: _counted(d, "none"))
    assert len(livekit.dispatches("unserved-room")) == 1  # it did land
    assert d.metric("friday_dispatcher_late_landings_total", {"outcome": "reported"}) == 0
    async with CallsClient(calls.address) as history:
        found = await history.get_call("unserved-room")
    assert not found.call.dispatch.dispatch_id and len(found.events) == 1


async def _counted(d: RunningDispatcher, outcome: str) -> bool:
    return d.metric("friday_dispatcher_late_landings_total", {"outcome": outcome}) > 0
