"""Per-server Prometheus metrics over HTTP, ErrorInfo round trips, the channel's
retry policy and retry pushback, and configuration from the environment."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from prometheus_client import CollectorRegistry

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common.ports import ServicePorts
from services.grpc_runtime import (
    GrpcServer,
    MetricsHTTPServer,
    RetryPolicy,
    ServerConfig,
    create_channel,
    error_info,
)
from services.grpc_runtime.metrics import HEALTH_PATH
from tests.grpc_runtime.servicer import SERVICE_NAME, ProbeServicer, probe_spec

METHOD = "/friday.persona.v1.PersonaService/GetPersona"


async def http_request(port: int, raw: bytes) -> tuple[int, str]:
    """Send `raw` as-is (so malformed requests can be sent too) and read to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    return int(head.split()[1]), body


async def http_get(port: int, path: str = "/metrics") -> tuple[int, str]:
    return await http_request(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())


def sample(body: str, name: str, **labels: str) -> float:
    for line in body.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _call(channel: grpc.aio.Channel, number: str) -> grpc.StatusCode:
    stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
    try:
        await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number=number), timeout=3)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_metrics_by_method_and_code_on_separate_registries() -> None:
    config = ServerConfig(host="127.0.0.1", port=0, metrics_port=0)
    # Two servers in one process: each has its own registry, so no duplicate-metric error.
    async with (
        GrpcServer(config, [probe_spec(ProbeServicer())]) as one,
        GrpcServer(config, [probe_spec(ProbeServicer())]) as two,
    ):
        assert one.metrics_port and two.metrics_port and one.metrics_port != two.metrics_port
        async with create_channel(one.address) as channel:
            assert await _call(channel, "x") == grpc.StatusCode.OK
            assert await _call(channel, "x") == grpc.StatusCode.OK
            assert await _call(channel, "error") == grpc.StatusCode.NOT_FOUND
        # The server counts a call just after its status went out (an aborted call's status
        # can reach the client before the handler's task resumes): scrape until it is in.
        for _ in range(100):
            status, body_one = await http_get(one.metrics_port)
            if sample(body_one, "grpc_server_handling_seconds_count", grpc_method=METHOD) >= 3:
                break
            await asyncio.sleep(0.02)
        _, body_two = await http_get(two.metrics_port)
        missing, _ = await http_get(one.metrics_port, "/nope")
    assert status == 200 and missing == 404
    assert sample(body_one, "grpc_server_handled_total", grpc_method=METHOD, grpc_code="OK") == 2
    assert sample(body_one, "grpc_server_handled_total", grpc_method=METHOD, grpc_code="NOT_FOUND") == 1
    assert sample(body_one, "grpc_server_handling_seconds_count", grpc_method=METHOD) == 3
    assert sample(body_two, "grpc_server_handled_total", grpc_method=METHOD, grpc_code="OK") == 0


async def test_metrics_endpoint_rejects_oversize_and_endless_headers_and_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = ServerConfig(host="127.0.0.1", port=0, metrics_port=0)
    async with GrpcServer(config, [probe_spec(ProbeServicer())]) as server:
        assert server.metrics_port
        start = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n"
        long_line = b"X-Long: " + b"a" * (70 * 1024) + b"\r\n"  # beyond asyncio's 64 KiB readline limit
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
        oversize, _ = await http_request(server.metrics_port, start + long_line + b"\r\n")
        endless, _ = await http_request(server.metrics_port, start + many + b"\r\n")
        status, body = await http_get(server.metrics_port)
    assert 400 <= oversize < 500
    assert 400 <= endless < 500
    assert status == 200 and "grpc_server_handled_total" in body
    # A bad scrape is the client's fault: no ERROR (nor "unhandled exception") in our logs.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_metrics_endpoint_closes_a_client_that_dribbles_headers() -> None:
    # One header line at a time, each well inside any per-line timeout: the connection
    # must still be closed once it has gone idle_timeout without a complete request.
    server = MetricsHTTPServer(CollectorRegistry(), "127.0.0.1", 0, idle_timeout=0.5)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        closed = asyncio.create_task(reader.read())
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
        sent = 0
        try:
            while not closed.done() and sent < 200:  # 200 lines = 20 s, 40x the idle timeout
                writer.write(b"X-Slow-%d: v\r\n" % sent)
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.1)
        except ConnectionError:
            pass  # the server closed the socket under us: what we want
        finally:
            writer.close()
        try:
            reply = await asyncio.wait_for(closed, 10)
        except ConnectionError:
            reply = b""  # closed with unread data in its buffer: a reset, still a close
        assert sent < 200 and reply == b""  # dropped, never answered
        status, _ = await http_get(server.port)  # and still serving
        assert status == 200
    finally:
        await server.stop()


async def test_http_health_follows_the_overall_grpc_status_and_turns_503_when_draining() -> None:
    servicer = ProbeServicer()
    config = ServerConfig(host="127.0.0.1", port=0, metrics_port=0, shutdown_grace_seconds=5)
    server = GrpcServer(config, [probe_spec(servicer)])
    await server.start()
    assert server.metrics_port
    metrics_port = server.metrics_port
    channel = create_channel(server.address)
    try:
        assert await http_get(metrics_port, HEALTH_PATH) == (200, "SERVING\n")
        # A dependency down leaves the overall status (what the kubelet asks) SERVING.
        await server.health.report(SERVICE_NAME, "crm", False)
        assert (await http_get(metrics_port, HEALTH_PATH))[0] == 200
        held = asyncio.ensure_future(
            persona_service_pb2_grpc.PersonaServiceStub(channel).GetPersona(
                persona_service_pb2.GetPersonaRequest(dialed_number="hold"), timeout=10
            )
        )
        await asyncio.wait_for(servicer.entered.wait(), 5)
        stopping = asyncio.create_task(server.stop())
        for _ in range(100):  # stop() turns health NOT_SERVING first, then drains the held call
            if (await http_get(metrics_port, HEALTH_PATH))[0] == 503:
                break
            await asyncio.sleep(0.02)
        assert await http_get(metrics_port, HEALTH_PATH) == (503, "NOT_SERVING\n")
        servicer.release.set()
        await held
        await stopping
    finally:
        await channel.close()
        await server.stop(grace=0)


async def test_metrics_disabled_by_default() -> None:
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0), [probe_spec(ProbeServicer())]) as server:
        assert server.metrics_port is None


async def test_error_info_reaches_the_client() -> None:
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0), [probe_spec(ProbeServicer())]) as server:
        async with create_channel(server.address) as channel:
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="error"), timeout=3)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert failure.value.details() == "nothing here"
    info = error_info(failure.value)
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == ("THING_NOT_FOUND", "test.friday", {"thing": "42"})


async def test_channel_retry_policy_retries_unavailable() -> None:
    servicer = ProbeServicer()
    servicer.fail_remaining = 2
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0), [probe_spec(servicer)]) as server:
        retry = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)
        async with create_channel(server.address, services=[SERVICE_NAME], retry=retry) as channel:
            assert await _call(channel, "flaky") == grpc.StatusCode.OK
    assert servicer.calls == 3


async def test_retry_pushback_stops_channel_retries() -> None:
    servicer = ProbeServicer()
    servicer.fail_remaining = 2
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0), [probe_spec(servicer)]) as server:
        retry = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)
        async with create_channel(server.address, services=[SERVICE_NAME], retry=retry) as channel:
            assert await _call(channel, "flaky-no-retry") == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1


async def test_without_retry_policy_unavailable_is_final() -> None:
    servicer = ProbeServicer()
    servicer.fail_remaining = 1
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0), [probe_spec(servicer)]) as server:
        async with create_channel(server.address) as channel:
            assert await _call(channel, "flaky") == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1


def test_server_config_from_env() -> None:
    env = {
        "DISPATCHER_PORT": "6000",
        "DISPATCHER_METRICS_PORT": "0",
        "DISPATCHER_TLS_CERT_FILE": "/c.pem",
        "DISPATCHER_TLS_KEY_FILE": "/k.pem",
        "DISPATCHER_TLS_CLIENT_CA_FILE": "/ca.pem",
        "DISPATCHER_TOKEN": "t",
    }
    config = ServerConfig.from_env("DISPATCHER", ServicePorts(grpc=50052, metrics=9102), environ=env)
    assert (config.port, config.metrics_port, config.auth_token) == (6000, None, "t")
    assert config.tls is not None and config.tls.mutual and config.tls.cert_file == "/c.pem"
    defaults = ServerConfig.from_env("PERSONA", ServicePorts(grpc=50051, metrics=9101), environ={})
    assert (defaults.port, defaults.metrics_port, defaults.tls, defaults.auth_token) == (50051, 9101, None, None)
    with pytest.raises(ValueError):
        ServerConfig.from_env("X", ServicePorts(grpc=1, metrics=2), environ={"X_TLS_CERT_FILE": "/c"})
    assert "auth_token" not in repr(config)  # the token never reaches logs via repr
