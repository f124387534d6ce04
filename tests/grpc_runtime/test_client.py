"""services/grpc_runtime/client.py: what every typed client gets from ServiceClient, shown
through a client of the standard health service against a port nothing listens on."""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.grpc_runtime import ServiceCallError, ServiceClient, create_channel


class HealthCallError(ServiceCallError):
    pass


class HealthClient(ServiceClient):
    env_prefix = "HEALTHY"
    default_target = "localhost:1"
    default_timeout_seconds = 0.5
    call_error = HealthCallError

    @functools.cached_property
    def _stub(self) -> Any:  # grpc_health's stub declares no methods to type checkers
        return health_pb2_grpc.HealthStub(self.channel)

    async def check(self) -> health_pb2.HealthCheckResponse:
        return await self._call(self._stub.Check, health_pb2.HealthCheckRequest(), None, "trace-1")


@pytest.fixture
def refused_target() -> Iterator[str]:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def test_from_env_reads_the_prefixed_settings_and_flags_win() -> None:
    environ = {"HEALTHY_TARGET": "h:1", "HEALTHY_TOKEN": "t"}
    async with HealthClient.from_env(environ) as client:
        assert (client._token, client._default_timeout) == ("t", 0.5)
    async with HealthClient.from_env(environ, target="other:2", default_timeout=3.0, token=None) as overridden:
        assert (overridden._token, overridden._default_timeout) == ("t", 3.0)


async def test_a_failed_call_raises_the_clients_error_with_code_and_retryable(refused_target: str) -> None:
    async with HealthClient(refused_target) as client:
        with pytest.raises(HealthCallError) as caught:
            await client.check()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE and caught.value.retryable
    assert caught.value.reason == "" and str(caught.value).startswith("UNAVAILABLE -: ")


async def test_a_channel_the_caller_passed_stays_open(refused_target: str) -> None:
    channel = create_channel(refused_target)
    async with HealthClient("ignored", channel=channel) as client:
        assert client.channel is channel
    assert channel.get_state() != grpc.ChannelConnectivity.SHUTDOWN
    await channel.close()
