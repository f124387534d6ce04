"""Callers must present DISPATCHER_TOKEN (health and reflection stay open), and the
service speaks TLS and mTLS from certificate files, with the shared runtime's
server and client settings."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.dispatcher.client import DispatcherCallError, DispatcherClient
from services.grpc_runtime import ClientTLSConfig, ServerConfig, ServerTLSConfig
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, config_for, job_metadata
from tests.grpc_runtime.certs import make_certs

TOKEN = "dispatcher-token-0123456789"


@pytest.mark.parametrize(("presented", "reason"), [(None, "MISSING_TOKEN"), ("not-the-token", "INVALID_TOKEN")])
async def test_missing_or_bad_token_is_unauthenticated_while_health_answers(
    livekit: LiveKitStandIn, start_dispatcher, presented: str | None, reason: str
) -> None:
    livekit.create_room("auth-room")
    d = await start_dispatcher(
        config_for(livekit), server_config=ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN), token=presented
    )

    with pytest.raises(DispatcherCallError) as caught:
        await d.client.dispatch_agent("auth-room", AGENT, job_metadata("auth-room"))
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    with pytest.raises(DispatcherCallError) as listing:
        await d.client.list_dispatches("auth-room")
    assert listing.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert livekit.calls == []

    health = health_pb2_grpc.HealthStub(d.client.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_right_token_dispatches(livekit: LiveKitStandIn, start_dispatcher) -> None:
    livekit.create_room("auth-ok-room")
    d = await start_dispatcher(
        config_for(livekit), server_config=ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN), token=TOKEN
    )

    response = await d.client.dispatch_agent("auth-ok-room", AGENT, job_metadata("auth-ok-room"))

    assert response.already_existed is False
    assert len(livekit.dispatches("auth-ok-room")) == 1


async def test_tls_round_trip(livekit: LiveKitStandIn, start_dispatcher, tmp_path: Path) -> None:
    livekit.create_room("tls-room")
    pki = make_certs(tmp_path)
    tls = ServerTLSConfig(cert_file=pki.server_cert, key_file=pki.server_key)
    d = await start_dispatcher(
        config_for(livekit),
        server_config=ServerConfig(host="127.0.0.1", port=0, tls=tls),
        tls=ClientTLSConfig(ca_file=pki.ca),
    )

    response = await d.client.dispatch_agent("tls-room", AGENT, job_metadata("tls-room"))
    assert response.dispatch.room == "tls-room"

    # A plaintext client cannot talk to the TLS port.
    async with DispatcherClient(d.server.address, default_timeout=1.0) as plain:
        with pytest.raises(DispatcherCallError) as caught:
            await plain.list_dispatches("tls-room")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate_from_our_ca(
    livekit: LiveKitStandIn, start_dispatcher, tmp_path: Path
) -> None:
    livekit.create_room("mtls-room")
    pki = make_certs(tmp_path)
    tls = ServerTLSConfig(cert_file=pki.server_cert, key_file=pki.server_key, client_ca_file=pki.ca)
    d = await start_dispatcher(
        config_for(livekit),
        server_config=ServerConfig(host="127.0.0.1", port=0, tls=tls, auth_token=TOKEN),
        token=TOKEN,
        tls=ClientTLSConfig(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key),
    )

    response = await d.client.dispatch_agent("mtls-room", AGENT, job_metadata("mtls-room"))
    assert response.already_existed is False

    refused = [
        ClientTLSConfig(ca_file=pki.ca),  # no client certificate
        ClientTLSConfig(ca_file=pki.ca, cert_file=pki.foreign_client_cert, key_file=pki.foreign_client_key),
    ]
    for client_tls in refused:
        async with DispatcherClient(d.server.address, token=TOKEN, tls=client_tls, default_timeout=1.0) as other:
            with pytest.raises(DispatcherCallError) as caught:
                await other.list_dispatches("mtls-room")
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(livekit.dispatches("mtls-room")) == 1


async def test_client_reads_target_token_and_tls_from_the_environment(
    livekit: LiveKitStandIn, start_dispatcher, tmp_path: Path
) -> None:
    livekit.create_room("env-room")
    pki = make_certs(tmp_path)
    tls = ServerTLSConfig(cert_file=pki.server_cert, key_file=pki.server_key, client_ca_file=pki.ca)
    d = await start_dispatcher(
        config_for(livekit), server_config=ServerConfig(host="127.0.0.1", port=0, tls=tls, auth_token=TOKEN)
    )
    env = {
        "DISPATCHER_TARGET": d.server.address,
        "DISPATCHER_TOKEN": TOKEN,
        "DISPATCHER_TLS_CA_FILE": pki.ca,
        "DISPATCHER_TLS_CLIENT_CERT_FILE": pki.client_cert,
        "DISPATCHER_TLS_CLIENT_KEY_FILE": pki.client_key,
    }

    async with DispatcherClient.from_env(env) as client:
        response = await client.dispatch_agent("env-room", AGENT, job_metadata("env-room"), trace_id="EV_env")

    assert response.dispatch.room == "env-room"
