"""What an unauthenticated peer can do to the logs: each case against the real servers
of the mesh, and none may leave an ERROR record or a traceback (tests/hostile/logs.py).
A client that leaves mid-body is one INFO line; `Health/List` is answered, not a
NotImplementedError; health Watch streams cut by a shutdown end quietly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.grpc_runtime.channel import create_channel
from services.testing.livekit_webhooks import event_body, sign, sip_participant_joined
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_PATH, WEBHOOK_SECRET, Mesh
from tests.hostile.conftest import error_records
from tests.webhook_gateway.conftest import DIALED

DISCONNECTED = "client disconnected before its body was complete"
# Only a server that never logs the case makes the test wait this long.
LOG_WAIT_SECONDS = 30.0


class _Dealt(logging.Handler):
    """Set once the gateway has dealt with the disconnect: its one line, or an error instead."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or DISCONNECTED in record.getMessage():
            self.event.set()


async def test_a_client_leaving_mid_body_is_one_info_line(mesh: Mesh, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    dealt = _Dealt()
    logging.getLogger().addHandler(dealt)
    body = event_body(sip_participant_joined(room="call-left", dialed_number=DIALED))
    headers = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET)  # a real token: the head passes every check
    head = [f"POST {WEBHOOK_PATH} HTTP/1.1", "Host: gateway", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    host, port = mesh.gateway_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body[: len(body) // 2])
    await writer.drain()
    writer.transport.abort()  # gone, half the body unsent

    try:
        await asyncio.wait_for(dealt.event.wait(), LOG_WAIT_SECONDS)
    finally:
        logging.getLogger().removeHandler(dealt)

    assert error_records(caplog) == []
    assert mesh.livekit.all_dispatches() == []


async def test_health_list_is_answered_on_both_services(mesh: Mesh, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for server in (mesh.persona.server, mesh.dispatcher.server):
        assert server is not None
        async with create_channel(server.address) as channel:
            # The type stubs predate List and its messages.
            health: Any = health_pb2
            listed = await health_pb2_grpc.HealthStub(channel).List(  # type: ignore[attr-defined]
                health.HealthListRequest(), timeout=5
            )
        statuses = {name: reply.status for name, reply in listed.statuses.items()}
        assert statuses[""] == health_pb2.HealthCheckResponse.SERVING, statuses
        assert len(statuses) > 1, statuses  # the service's own entry too
    assert error_records(caplog) == []


async def test_shutdown_ends_open_health_watches_quietly(mesh: Mesh, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    servers = [mesh.persona.server, mesh.dispatcher.server]
    channels = [create_channel(server.address) for server in servers if server is not None]
    try:
        watches = [
            health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service))
            for channel in channels
            for service in ("", "no.such.Service")
        ]
        for watch in watches:
            assert (await watch.read()) is not grpc.aio.EOF
        # Past the grace period the watches are still open: the server cancels them.
        await mesh.stop_persona(grace=0.2)
        await mesh.stop_dispatcher(grace=0.2)
        for watch in watches:
            watch.cancel()
    finally:
        for channel in channels:
            await channel.close()
    assert error_records(caplog) == []
