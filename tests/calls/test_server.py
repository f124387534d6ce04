"""CallHistoryService as it runs: build_server on a real socket, migrated SQLite (and
PostgreSQL) underneath; the RPCs, their status codes and ErrorInfo, page tokens, bearer
auth, health, metrics, and grpcurl through reflection."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1.call_pb2 import CallOutcome
from services.calls.client import CallsCallError, CallsClient
from services.calls.config import CallsConfig, StoreConfig
from services.calls.server import SERVICE_FULL_NAME, build_server
from services.grpc_runtime import GrpcServer, ServerConfig, create_channel
from tests.calls import events as ev

pytestmark = pytest.mark.asyncio

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))
needs_grpcurl = pytest.mark.skipif(
    not Path(GRPCURL).exists() and not shutil.which("grpcurl"), reason="grpcurl not installed"
)
TOKEN = "calls-test-token-0123456789abcdef"


@pytest.fixture
async def server(store_config: StoreConfig) -> AsyncIterator[GrpcServer]:
    config = CallsConfig(store=store_config, sweep_interval_seconds=3600)
    server = build_server(config, ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0)


async def test_record_list_get_stats_over_grpc(server: GrpcServer) -> None:
    async with CallsClient(server.address, token=TOKEN) as client:
        for event in ev.whole_call("call-grpc"):
            first = await client.record(event)
            assert first.recorded
            again = await client.record(event)
            assert not again.recorded
        assert again.call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED
        for n in range(3):
            await client.record(ev.sip_joined(f"call-page{n}", ev.T0 + (n + 1) * 1000))
        page = await client.list_calls(pb.ListCallsRequest(page_size=2))
        assert [c.room for c in page.calls] == ["call-page2", "call-page1"]
        rest = await client.list_calls(pb.ListCallsRequest(page_size=2, page_token=page.next_page_token))
        assert [c.room for c in rest.calls] == ["call-page0", "call-grpc"]
        answered = await client.list_calls(pb.ListCallsRequest(outcome=CallOutcome.CALL_OUTCOME_ANSWERED))
        assert [c.room for c in answered.calls] == ["call-grpc"]
        got = await client.get_call("SCL_call-grpc")
        assert got.call.answer_seconds == pytest.approx(1.5)
        assert len(got.events) == 5
        wide = pb.GetCallStatsRequest(bucket_seconds=86_400)
        wide.start_time.FromSeconds(ev.T0 // 1000 - 60)
        wide.end_time.FromSeconds(ev.T0 // 1000 + 3600)
        stats = await client.stats(wide)
        assert stats.total.calls == 4 and stats.total.answered == 1


async def test_errors_carry_codes_and_reasons(server: GrpcServer) -> None:
    async with CallsClient(server.address, token=TOKEN) as client:
        with pytest.raises(CallsCallError) as missing:
            await client.get_call("call-nobody")
        assert (missing.value.code, missing.value.reason) == (grpc.StatusCode.NOT_FOUND, "CALL_NOT_FOUND")
        bad = ev.sip_joined("call-bad")
        bad.event_id = ""
        with pytest.raises(CallsCallError) as invalid:
            await client.record(bad)
        assert (invalid.value.code, invalid.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EVENT")
        with pytest.raises(CallsCallError) as token:
            await client.list_calls(pb.ListCallsRequest(page_token="not a token"))
        assert token.value.reason == "INVALID_PAGE_TOKEN"
        with pytest.raises(CallsCallError) as size:
            await client.list_calls(pb.ListCallsRequest(page_size=501))
        assert size.value.reason == "INVALID_QUERY"
    async with CallsClient(server.address, token="wrong") as stranger:
        with pytest.raises(CallsCallError) as denied:
            await stranger.get_call("call-nobody")
        assert denied.value.code == grpc.StatusCode.UNAUTHENTICATED


async def test_record_call_events_answers_each_event_and_records_the_rest(server: GrpcServer) -> None:
    joined, left = ev.sip_joined("call-batch"), ev.sip_left("call-batch", ev.T0 + 9000)
    bad = ev.sip_joined("call-batch-bad")
    bad.ClearField("occurred_at")
    async with CallsClient(server.address, token=TOKEN) as client:
        answer = await client.record_many([joined, bad, joined, left])
        assert [(r.event_id, r.recorded, r.error_reason) for r in answer.results] == [
            (joined.event_id, True, ""),
            (bad.event_id, False, "INVALID_EVENT"),
            (joined.event_id, False, ""),  # the same id again in one batch: recorded once
            (left.event_id, True, ""),
        ]
        assert "occurred_at" in answer.results[1].error_message
        got = await client.get_call("call-batch")
        assert got.call.HasField("ended_at") and len(got.events) == 2
        with pytest.raises(CallsCallError) as bad_call:
            await client.get_call("call-batch-bad")
        assert bad_call.value.code == grpc.StatusCode.NOT_FOUND
        for events in ([], [ev.sip_joined(f"call-many{n}") for n in range(501)]):
            with pytest.raises(CallsCallError) as size:
                await client.record_many(events)
            assert (size.value.code, size.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EVENT")
        with pytest.raises(CallsCallError) as none_recorded:
            await client.get_call("call-many0")
        assert none_recorded.value.code == grpc.StatusCode.NOT_FOUND


async def test_health_and_metrics(server: GrpcServer) -> None:
    async with create_channel(server.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_FULL_NAME), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with CallsClient(server.address, token=TOKEN) as client:
        now_ms = time.time_ns() // 1_000_000  # the server decides no_agent by its own clock
        await client.record(ev.sip_joined("call-metrics", now_ms))
        await client.record(ev.agent_joined("call-metrics", now_ms + 1500))
    registry = server.registry
    # Answered, not ended: in progress, and not counted until its record settled.
    assert registry.get_sample_value("friday_calls_total", {"outcome": "answered"}) == 0
    assert registry.get_sample_value("friday_calls_total", {"outcome": "no_agent"}) == 0
    assert registry.get_sample_value("friday_call_answer_seconds_count") == 0
    assert registry.get_sample_value("friday_calls_in_progress") == 1


@needs_grpcurl
async def test_grpcurl_through_reflection(server: GrpcServer) -> None:
    async with CallsClient(server.address, token=TOKEN) as client:
        for event in ev.whole_call("call-curl"):
            await client.record(event)
    auth = ("-H", f"authorization: Bearer {TOKEN}")
    listed = await _grpcurl("-plaintext", server.address, "list")
    assert SERVICE_FULL_NAME in listed.split()
    described = await _grpcurl("-plaintext", server.address, "describe", SERVICE_FULL_NAME)
    assert "rpc GetCallStats" in described
    request = '{"call": "call-curl"}'
    got = json.loads(await _grpcurl("-plaintext", *auth, "-d", request, server.address, f"{SERVICE_FULL_NAME}/GetCall"))
    assert got["call"]["outcome"] == "CALL_OUTCOME_ANSWERED"
    dispatch = got["call"]["dispatch"]
    assert dispatch.get("personaId", dispatch.get("persona_id")) == "xeny-reception"
    listed_calls = json.loads(
        await _grpcurl(
            "-plaintext",
            *auth,
            "-d",
            '{"outcome": "CALL_OUTCOME_ANSWERED"}',
            server.address,
            f"{SERVICE_FULL_NAME}/ListCalls",
        )
    )
    assert [c["room"] for c in listed_calls["calls"]] == ["call-curl"]


async def _grpcurl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(GRPCURL, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_the_running_sweep_decides_a_call_nobody_answered(store_config: StoreConfig) -> None:
    config = CallsConfig(store=store_config, no_agent_seconds=0.2, sweep_interval_seconds=0.05)
    server = build_server(config, ServerConfig(host="127.0.0.1", port=0))
    await server.start()
    try:
        async with CallsClient(server.address) as client:
            await client.record(ev.sip_joined("call-nobody", time.time_ns() // 1_000_000))
            deadline = time.monotonic() + 60  # a cap for a stuck test; the loop ends when the sweep has run
            while (await client.get_call("call-nobody")).call.outcome != CallOutcome.CALL_OUTCOME_NO_AGENT:
                assert time.monotonic() < deadline, "the sweep never decided the call"
                await asyncio.sleep(0.05)
        assert server.registry.get_sample_value("friday_calls_in_progress") == 1  # still ringing
        assert server.registry.get_sample_value("friday_calls_total", {"outcome": "no_agent"}) == 0  # not ended
    finally:
        await server.stop(grace=0)


async def test_the_running_sweep_counts_an_ended_call_once_under_its_final_outcome(store_config: StoreConfig) -> None:
    # Settle time well above the gap between two RPCs on a loaded machine: the sweep must not
    # count the call between its leave and its join.
    config = CallsConfig(store=store_config, settle_seconds=3.0, sweep_interval_seconds=0.05)
    server = build_server(config, ServerConfig(host="127.0.0.1", port=0))
    await server.start()
    registry = server.registry
    try:
        async with CallsClient(server.address) as client:
            now_ms = time.time_ns() // 1_000_000
            # The caller's leave recorded before the agent's join that came first: the record
            # reads no_agent until the join lands, and is answered in the end.
            await client.record(ev.sip_joined("call-final", now_ms))
            await client.record(ev.sip_left("call-final", now_ms + 30_000))
            assert (await client.get_call("call-final")).call.outcome == CallOutcome.CALL_OUTCOME_NO_AGENT
            await client.record(ev.agent_joined("call-final", now_ms + 1500))
            deadline = time.monotonic() + 60  # a cap for a stuck test; the loop ends once the sweep counted it
            while registry.get_sample_value("friday_calls_total", {"outcome": "answered"}) == 0:
                assert time.monotonic() < deadline, "the sweep never counted the call"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # several more sweeps: still counted once
        assert registry.get_sample_value("friday_calls_total", {"outcome": "answered"}) == 1
        assert registry.get_sample_value("friday_calls_total", {"outcome": "no_agent"}) == 0
        assert registry.get_sample_value("friday_call_answer_seconds_count") == 1
        assert registry.get_sample_value("friday_calls_in_progress") == 0
    finally:
        await server.stop(grace=0)
