"""Where a GrpcServer listens: loopback unless told otherwise, one process per port
(no SO_REUSEPORT sharing), and a bind failure that names the address and why."""

from __future__ import annotations

import socket

import pytest

from services.common.listen_address import ListenError
from services.grpc_runtime import GrpcServer, ServerConfig
from tests.grpc_runtime.servicer import ProbeServicer, probe_spec


async def test_the_default_config_binds_loopback_for_grpc_and_metrics() -> None:
    async with GrpcServer(ServerConfig(port=0, metrics_port=0), [probe_spec(ProbeServicer())]) as server:
        assert server.endpoints() == {
            "grpc": f"127.0.0.1:{server.port}",
            "metrics": f"127.0.0.1:{server.metrics_port}",
        }
        for port in (server.port, server.metrics_port):
            with socket.socket() as probe:
                probe.connect(("127.0.0.1", port))
                assert probe.getpeername()[0] == "127.0.0.1"


async def test_a_second_server_cannot_share_a_bound_grpc_port() -> None:
    # grpc's default SO_REUSEPORT would let the second bind succeed and split the calls.
    async with GrpcServer(ServerConfig(port=0), [probe_spec(ProbeServicer())], name="first") as first:
        second = GrpcServer(ServerConfig(port=first.port), [probe_spec(ProbeServicer())], name="second")
        with pytest.raises(ListenError, match=f"second gRPC cannot listen on 127.0.0.1:{first.port}: .*in use"):
            await second.start()
        await second.stop()


async def test_a_busy_metrics_port_fails_the_start_and_closes_the_grpc_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        server = GrpcServer(ServerConfig(port=0, metrics_port=busy), [probe_spec(ProbeServicer())], name="svc")
        with pytest.raises(ListenError, match=f"svc metrics cannot listen on 127.0.0.1:{busy}"):
            await server.start()
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", server.port))  # the gRPC port it had bound is closed again
