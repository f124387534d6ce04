"""GrpcServer on real sockets: bound ports, health (overall, per service, dependency,
shutdown), reflection through the real grpcurl, access log, trace ids, deadlines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common.tracing import LOG_FORMAT, TRACE_ID_METADATA_KEY, TraceIdLogFilter
from services.grpc_runtime import GrpcServer, ServerConfig, create_channel, remaining_budget
from tests.grpc_runtime.servicer import SERVICE_NAME, ProbeServicer, probe_log, probe_spec

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))
needs_grpcurl = pytest.mark.skipif(
    not Path(GRPCURL).exists() and not shutil.which("grpcurl"), reason="grpcurl not installed"
)


def _config(**kw: object) -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]


async def _health(address: str, service: str) -> int:
    async with create_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return reply.status


async def test_port_zero_binds_a_real_port_and_serves() -> None:
    async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
        assert server.port > 0
        async with create_channel(server.address) as channel:
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            reply = await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="x"), timeout=2)
        assert reply.normalized_number == "ok"


async def test_health_overall_and_per_service_follow_dependencies() -> None:
    server = GrpcServer(_config(), [probe_spec(ProbeServicer())])
    report_crm = server.health.reporter(SERVICE_NAME, "crm")
    async with server:
        assert await _health(server.address, "") == health_pb2.HealthCheckResponse.SERVING
        assert await _health(server.address, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING

        await report_crm(False)
        assert await _health(server.address, SERVICE_NAME) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await _health(server.address, "") == health_pb2.HealthCheckResponse.SERVING

        await report_crm(True)
        assert await _health(server.address, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING

        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await _health(server.address, "no.such.Service")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_probe_is_polled() -> None:
    healthy = asyncio.Event()
    answers = iter([False, True])

    async def probe() -> bool:
        answer = next(answers, True)
        if answer:
            healthy.set()
        return answer

    server = GrpcServer(_config(), [probe_spec(ProbeServicer())])
    server.health.add_probe(SERVICE_NAME, "crm", probe, interval_seconds=0.05)
    async with server:
        await asyncio.wait_for(healthy.wait(), 5)
        await asyncio.sleep(0)  # let the report land
        assert await _health(server.address, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING


async def test_shutdown_turns_health_not_serving_before_draining() -> None:
    servicer = ProbeServicer()
    server = GrpcServer(_config(shutdown_grace_seconds=5), [probe_spec(servicer)])
    await server.start()
    channel = create_channel(server.address)
    try:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        in_flight = asyncio.ensure_future(
            persona_service_pb2_grpc.PersonaServiceStub(channel).GetPersona(
                persona_service_pb2.GetPersonaRequest(dialed_number="hold"), timeout=10
            )
        )
        await asyncio.wait_for(servicer.entered.wait(), 5)
        stopping = asyncio.create_task(server.stop())
        second = await asyncio.wait_for(watch.read(), 5)
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        servicer.release.set()  # the in-flight call finishes inside the grace period
        assert (await in_flight).normalized_number == "ok"
        # An open Watch stream is an RPC in flight too: left open, the stop would wait out all
        # 5 s of grace for it. Closing it lets the stop end once the unary call is done.
        watch.cancel()
        await asyncio.wait_for(stopping, 4)
    finally:
        await channel.close()
        await server.stop(grace=0)


async def test_unhandled_exception_is_unknown_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="friday.grpc.access")
    async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
        async with create_channel(server.address, trace_id=lambda: "EV_trace123") as channel:
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as crash:
                await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="crash"), timeout=2)
            assert crash.value.code() == grpc.StatusCode.UNKNOWN
            traced = await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="trace"), timeout=2)
    assert traced.normalized_number == "EV_trace123"  # current_trace_id() inside the handler
    lines = [r.getMessage() for r in caplog.records if r.name == "friday.grpc.access"]
    assert any(
        "method=/friday.persona.v1.PersonaService/GetPersona" in line
        and "code=UNKNOWN" in line
        and "EV_trace123" in line
        for line in lines
    ), lines


async def test_trace_id_from_explicit_metadata() -> None:
    async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
        async with create_channel(server.address) as channel:
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            reply = await stub.GetPersona(
                persona_service_pb2.GetPersonaRequest(dialed_number="trace"),
                metadata=((TRACE_ID_METADATA_KEY, "t-1"),),
                timeout=2,
            )
    assert reply.normalized_number == "t-1"


async def test_handler_log_lines_carry_the_callers_trace_id() -> None:
    # The service's own log lines (not just the access log) go through the same
    # TraceIdLogFilter every Friday process installs with configure_logging().
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(TraceIdLogFilter())
    probe_log.addHandler(handler)
    probe_log.setLevel(logging.INFO)
    try:
        async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
            async with create_channel(server.address) as channel:
                stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
                request = persona_service_pb2.GetPersonaRequest(dialed_number="log")
                await stub.GetPersona(request, metadata=((TRACE_ID_METADATA_KEY, "EV_log1"),), timeout=2)
                await stub.GetPersona(request, timeout=2)  # no trace id sent
                untraced = await stub.GetPersona(
                    persona_service_pb2.GetPersonaRequest(dialed_number="trace"), timeout=2
                )
    finally:
        probe_log.removeHandler(handler)
    lines = [line for line in out.getvalue().splitlines() if "handling the log probe" in line]
    assert len(lines) == 2, lines
    assert "trace=EV_log1 " in lines[0]
    assert "trace=- " in lines[1]  # the previous call's id does not leak into the next one
    assert untraced.normalized_number == ""  # current_trace_id() is '' when the caller sent none


async def test_remaining_budget_follows_the_callers_deadline_and_clamps_without_one() -> None:
    async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
        async with create_channel(server.address) as channel:
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            short = await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="budget"), timeout=1.0)
            none = await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="budget"))
    # the caller's 1 s deadline, not the 5 s budget (grpc's clocks may differ by a few ms)
    assert 0 < short.age_seconds < 1.5
    assert none.age_seconds == 5.0  # no deadline: the service's own budget


def test_remaining_budget_is_never_negative() -> None:
    class Expired:
        def time_remaining(self) -> float:
            return -0.5

    assert remaining_budget(Expired(), 2.0) == 0.0


@needs_grpcurl
async def test_grpcurl_lists_and_describes_through_reflection() -> None:
    async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
        listed = await _grpcurl("-plaintext", server.address, "list")
        described = await _grpcurl("-plaintext", server.address, "describe", SERVICE_NAME)
        called = await _grpcurl(
            "-plaintext", "-d", '{"dialed_number": "x"}', server.address, f"{SERVICE_NAME}/GetPersona"
        )
    assert set(listed.split()) >= {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert "rpc GetPersona" in described
    reply = json.loads(called)
    assert reply.get("normalizedNumber", reply.get("normalized_number")) == "ok", called


async def _grpcurl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(GRPCURL, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_each_call_of_a_method_has_its_own_trace_id_log_line_and_count(caplog: pytest.LogCaptureFixture) -> None:
    # The runtime wraps each method's handler once and reuses it: nothing of one call
    # (its trace id, its status code) may stay behind for the next.
    caplog.set_level(logging.INFO, logger="friday.grpc.access")
    async with GrpcServer(_config(), [probe_spec(ProbeServicer())]) as server:
        async with create_channel(server.address) as channel:
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            seen = []
            for trace in ("t-first", "t-second", ""):
                metadata = ((TRACE_ID_METADATA_KEY, trace),) if trace else ()
                request = persona_service_pb2.GetPersonaRequest(dialed_number="trace")
                seen.append((await stub.GetPersona(request, metadata=metadata, timeout=2)).normalized_number)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="crash"), timeout=2)
        method = "/friday.persona.v1.PersonaService/GetPersona"
        handled = {
            code: server.registry.get_sample_value(
                "grpc_server_handled_total", {"grpc_method": method, "grpc_code": code}
            )
            for code in ("OK", "UNKNOWN")
        }
    assert seen == ["t-first", "t-second", ""]
    lines = [r.getMessage() for r in caplog.records if r.name == "friday.grpc.access"]
    assert [line.split("trace_id=")[1].split()[0] for line in lines] == ["t-first", "t-second", "-", "-"]
    assert ["code=OK" in line for line in lines] == [True, True, True, False]
    assert handled == {"OK": 3, "UNKNOWN": 1}


def test_generated_registration_reaches_the_server_as_generic_handlers_only() -> None:
    # Every registered method costs every call a wait on its pending request in grpc.aio's
    # serving loop; the generic handler added beside it serves the same method.
    from services.grpc_runtime.server import GenericHandlersOnly

    class Recorder:
        def __init__(self) -> None:
            self.generic: list[object] = []
            self.registered: list[str] = []

        def add_generic_rpc_handlers(self, handlers: object) -> None:
            self.generic.append(handlers)

        def add_registered_method_handlers(self, service: str, handlers: object) -> None:
            self.registered.append(service)

    recorder = Recorder()
    servicer = health_pb2_grpc.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, GenericHandlersOnly(recorder))  # type: ignore[arg-type]
    assert len(recorder.generic) == 1 and recorder.registered == []
