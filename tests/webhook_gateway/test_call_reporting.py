"""The gateway reports every call to a real CallHistoryService, off the dispatch path:
a call's webhooks become one record (persona, answer time, duration), and the answers
LiveKit gets are the same whether CallHistory is there, down, hung, or its queue full."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from friday.calls.v1 import call_history_service_pb2_grpc as pb_grpc
from friday.calls.v1.call_history_service_pb2 import ListCallsRequest
from friday.calls.v1.call_pb2 import Call, CallEvent, CallOutcome
from services.calls.client import CallsCallError, CallsClient
from services.calls.config import CallsConfig, StoreConfig
from services.calls.history import CallHistory
from services.calls.metrics import CallsMetrics
from services.calls.server import build_server as build_calls
from services.calls.servicer import CallHistoryServicer
from services.calls.store import CallQuery, Fold, Notices, Recorded, SqlCallStore
from services.grpc_runtime import ServerConfig, create_channel
from services.testing import livekit_webhooks as webhooks
from services.testing.mesh import Mesh
from services.webhook_gateway.call_events import from_webhook
from services.webhook_gateway.call_reporter import (
    CallReporter,
    CallReporterMetrics,
    CallReportingConfig,
    GrpcCallHistory,
)
from services.webhook_gateway.config import HttpServerConfig
from services.webhook_gateway.server import GatewayServer
from services.webhook_gateway.server import build_server as build_gateway
from tests.webhook_gateway.conftest import CRM_PERSONA, DIALED

pytestmark = pytest.mark.asyncio

RECORD_WAIT_SECONDS = 60.0  # a cap for a stuck test, not a margin: the poll ends when the record is there


class HungStore(SqlCallStore):
    """A database that accepts connections and then never answers a write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()

    async def record(
        self, events: Sequence[CallEvent], received_at_ms: int, fold: Fold, notices: Notices | None = None
    ) -> list[Recorded]:
        await self.release.wait()
        return await super().record(events, received_at_ms, fold, notices)


async def _calls_server(tmp_path: Path, name: str, store_factory: Callable[..., SqlCallStore] | None = None):
    config = CallsConfig(store=StoreConfig(database_url=f"sqlite:///{tmp_path / name}"), sweep_interval_seconds=3600)
    store = store_factory(config.store, clock_ms=lambda: time.time_ns() // 1_000_000) if store_factory else None
    server = build_calls(config, ServerConfig(host="127.0.0.1", port=0), store=store)
    await server.start()
    return server, store


def _dead_target() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # closed on return: nothing listens there


async def _gateway(mesh: Mesh, reporting: CallReportingConfig | None) -> GatewayServer:
    config = mesh.gateway_config
    if reporting is not None:
        config = dataclasses.replace(config, call_reporting=reporting)
    gateway = build_gateway(config, HttpServerConfig(host="127.0.0.1", port=0))
    await gateway.start()
    return gateway


def _call_webhooks(room: str, start_s: int) -> list:
    joined = webhooks.sip_participant_joined(
        room=room, dialed_number=DIALED, created_at=start_s, joined_at_ms=start_s * 1000
    )
    return [
        joined,
        joined,  # LiveKit's redelivery: the same bytes
        webhooks.agent_participant_joined(room=room, joined_at_ms=start_s * 1000 + 1250),
        webhooks.sip_participant_left(joined, created_at=start_s + 42),
        webhooks.room_finished(room=room, created_at=start_s + 43),
    ]


async def _deliver(mesh: Mesh, gateway: GatewayServer, events: list) -> list[tuple[int, dict]]:
    answers = []
    for event in events:
        if event.event == "participant_joined":
            mesh.livekit.create_room(event.room.name)
        body, headers = mesh.signed_request(event)
        response = await mesh.http.post(gateway.url + "/livekit-webhook", content=body, headers=headers)
        answer = response.json()
        for varying in ("dispatch_id", "room", "trace_id"):
            answer.pop(varying, None)
        answers.append((response.status_code, answer))
    return answers


def _sip_joins(prefix: str, count: int) -> list[CallEvent]:
    """The call events of `count` callers joining now, as the gateway reports them."""
    start_ms = time.time_ns() // 1_000_000
    return [
        event
        for n in range(count)
        if (
            event := from_webhook(
                webhooks.sip_participant_joined(room=f"{prefix}{n}", dialed_number=DIALED, joined_at_ms=start_ms),
                agent_name="friday-ai-agent",
            )
        )
        is not None
    ]


async def _wait_for(client: CallsClient, room: str, done: Callable[[Call], bool]) -> Call:
    deadline = time.monotonic() + RECORD_WAIT_SECONDS
    while True:
        try:
            call = (await client.get_call(room)).call
            if done(call):
                return call
        except CallsCallError:
            pass
        assert time.monotonic() < deadline, f"no finished record for {room}"
        await asyncio.sleep(0.05)


def _without_source(answers: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """The answers less the persona source, which is the CRM for the first call and its cache after."""
    for _, answer in answers:
        assert answer.pop("persona_source", "PERSONA_SOURCE_CRM") in ("PERSONA_SOURCE_CRM", "PERSONA_SOURCE_CACHE")
    return answers


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{wanted}}} (\S+)$" if labels else rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


async def test_a_call_is_recorded_from_ring_to_hang_up(mesh: Mesh, tmp_path: Path, stack: AsyncExitStack) -> None:
    calls, _ = await _calls_server(tmp_path, "calls.sqlite3")
    stack.push_async_callback(calls.stop, 0)
    gateway = await _gateway(mesh, CallReportingConfig(target=calls.address))
    stack.push_async_callback(gateway.stop)
    start_s = int(time.time())
    answers = await _deliver(mesh, gateway, _call_webhooks("call-recorded", start_s))
    assert answers[0][0] == 200 and answers[0][1]["status"] == "dispatched"
    async with CallsClient(calls.address) as client:
        call = await _wait_for(client, "call-recorded", lambda c: c.HasField("ended_at") and bool(c.dispatch.job_id))
        events = (await client.get_call("call-recorded")).events
    assert call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED
    assert call.dispatch.persona_id == CRM_PERSONA["persona_id"]
    assert call.dispatch.persona_source == "PERSONA_SOURCE_CRM"
    assert call.dispatch.persona_version.startswith("sha256:")
    assert call.answer_seconds == pytest.approx(1.25)  # LiveKit's join times, not our clock
    assert call.duration_seconds == pytest.approx(42.0)
    assert call.end_reason == "SIP_LEFT CLIENT_INITIATED"
    assert call.dialed_number == DIALED
    assert call.caller_number.endswith("0100") and "4155550100" not in call.caller_number
    # join (once: the redelivery is the same event), dispatch, agent, left, room finished
    assert len(events) == 5


async def test_answers_do_not_depend_on_call_history(mesh: Mesh, tmp_path: Path, stack: AsyncExitStack) -> None:
    hung_calls, hung_store = await _calls_server(tmp_path, "hung.sqlite3", HungStore)
    assert isinstance(hung_store, HungStore)
    stack.push_async_callback(hung_calls.stop, 0)
    stack.callback(hung_store.release.set)  # let the hung writes go before the server stops
    fast = dict(max_attempts=2, initial_backoff_seconds=0.01, max_backoff_seconds=0.02, drain_seconds=0)
    gateways = {
        "no reporting": await _gateway(mesh, None),
        "down": await _gateway(mesh, CallReportingConfig(target=_dead_target(), **fast)),
        "hung": await _gateway(mesh, CallReportingConfig(target=hung_calls.address, **fast)),
        "queue full": await _gateway(
            mesh, CallReportingConfig(target=hung_calls.address, queue_size=1, senders=1, **fast)
        ),
    }
    for gateway in gateways.values():
        stack.push_async_callback(gateway.stop)
    start_s = int(time.time())
    answers = {}
    for n, (name, gateway) in enumerate(gateways.items()):
        answers[name] = await _deliver(mesh, gateway, _call_webhooks(f"call-same-{n}", start_s))
    assert answers["no reporting"][0][1]["status"] == "dispatched"
    for name in ("down", "hung", "queue full"):
        assert _without_source(answers[name]) == _without_source(answers["no reporting"]), name
    full_metrics = (await mesh.http.get(gateways["queue full"].url + "/metrics")).text
    assert _metric(full_metrics, "friday_call_events_dropped_total", reason="queue_full") >= 1
    assert _metric(full_metrics, "friday_call_events_sent_total") == 0


async def test_the_reporter_retries_gives_up_and_counts(tmp_path: Path, stack: AsyncExitStack) -> None:
    calls, _ = await _calls_server(tmp_path, "reporter.sqlite3")
    stack.push_async_callback(calls.stop, 0)
    fast = dict(
        max_attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.02, drain_seconds=RECORD_WAIT_SECONDS
    )
    good = _sip_joins("call-r", 3)
    invalid = CallEvent(event_id="EV_bad", room="call-bad")  # no kind, no time: refused, never retried
    for target, expected in ((_dead_target(), {"gave_up": 4, "sent": 0}), (calls.address, {"rejected": 1, "sent": 3})):
        registry = CollectorRegistry()
        channel = create_channel(target)
        reporter = CallReporter(
            GrpcCallHistory(channel, None), CallReportingConfig(target=target, **fast), CallReporterMetrics(registry)
        )
        await reporter.start()
        for event in [*good, invalid]:
            reporter.report(event)
        await reporter.close()  # drains: every event has had all its attempts
        await channel.close()
        sent = registry.get_sample_value("friday_call_events_sent_total") or 0
        dropped = {
            reason: registry.get_sample_value("friday_call_events_dropped_total", {"reason": reason}) or 0
            for reason in ("gave_up", "rejected", "queue_full")
        }
        assert sent == expected["sent"]
        for reason in ("gave_up", "rejected"):
            assert dropped[reason] == expected.get(reason, 0), (target, dropped)
    async with CallsClient(calls.address) as client:
        assert len((await client.list_calls(ListCallsRequest())).calls) == 3


class ServicerBeforeBatches(CallHistoryServicer):
    """CallHistoryService as it was before RecordCallEvents: the method answers UNIMPLEMENTED."""

    RecordCallEvents = pb_grpc.CallHistoryServiceServicer.RecordCallEvents  # type: ignore[assignment]


async def test_an_older_call_history_without_batches_gets_one_call_per_event(
    tmp_path: Path, stack: AsyncExitStack, caplog: pytest.LogCaptureFixture
) -> None:
    """A rolling update can put a new gateway before an old CallHistoryService: its events
    must still be recorded, one RecordCallEvent each, and an invalid one still refused alone."""
    config = CallsConfig(store=StoreConfig(database_url=f"sqlite:///{tmp_path / 'old.sqlite3'}"))
    history = CallHistory(
        SqlCallStore(config.store, clock_ms=lambda: time.time_ns() // 1_000_000),
        config,
        CallsMetrics(CollectorRegistry()),
    )
    await history.start()
    stack.push_async_callback(history.stop)
    old = grpc.aio.server()
    pb_grpc.add_CallHistoryServiceServicer_to_server(ServicerBeforeBatches(history, config.max_page_size), old)
    port = old.add_insecure_port("127.0.0.1:0")
    await old.start()
    stack.push_async_callback(old.stop, 0)
    good = _sip_joins("call-old", 3)
    invalid = CallEvent(event_id="EV_bad", room="call-bad")
    registry = CollectorRegistry()
    channel = create_channel(f"127.0.0.1:{port}")
    stack.push_async_callback(channel.close)
    config_fast = CallReportingConfig(target="old", senders=1, drain_seconds=RECORD_WAIT_SECONDS)
    sink, metrics = GrpcCallHistory(channel, None), CallReporterMetrics(registry)
    reporter = CallReporter(sink, config_fast, metrics)
    for event in [good[0], invalid]:
        reporter.report(event)  # waiting before the sender starts: one batch, UNIMPLEMENTED, then a call each
    await reporter.start()
    await reporter.close()
    reporter = CallReporter(sink, config_fast, metrics)  # the sink remembers: no second try at a batch
    await reporter.start()
    for event in good[1:]:
        reporter.report(event)
    await reporter.close()
    assert registry.get_sample_value("friday_call_events_sent_total") == 3
    assert registry.get_sample_value("friday_call_events_dropped_total", {"reason": "rejected"}) == 1
    assert sorted(c.room for c in (await history.list_calls(CallQuery()))) == ["call-old0", "call-old1", "call-old2"]
    assert sum("no RecordCallEvents" in r.getMessage() for r in caplog.records) == 1
