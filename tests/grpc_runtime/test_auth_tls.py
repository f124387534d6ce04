"""Bearer-token auth (health and reflection stay open) and TLS / mTLS round trips
with certificates generated here."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.grpc_runtime import (
    ClientTLSConfig,
    GrpcServer,
    ServerConfig,
    ServerTLSConfig,
    create_channel,
    error_info,
)
from tests.grpc_runtime.certs import CertFiles, make_certs
from tests.grpc_runtime.servicer import ProbeServicer, probe_spec
from tests.grpc_runtime.test_server import _grpcurl

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


async def _get(channel: grpc.aio.Channel, **kw: object) -> persona_service_pb2.GetPersonaResponse:
    stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
    return await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number="x"), timeout=3, **kw)


async def test_token_required_when_configured() -> None:
    servicer = ProbeServicer()
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN), [probe_spec(servicer)]) as server:
        async with create_channel(server.address) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await _get(anonymous)
            with pytest.raises(grpc.aio.AioRpcError) as wrong:
                await _get(anonymous, metadata=(("authorization", "Bearer nope"),))
            with pytest.raises(grpc.aio.AioRpcError) as no_scheme:
                await _get(anonymous, metadata=(("authorization", TOKEN),))
            # health stays open without a token
            health = await health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=3)
        async with create_channel(server.address, bearer_token=TOKEN) as authorised:
            reply = await _get(authorised)
        # reflection stays open too
        listed = await _grpcurl("-plaintext", server.address, "list")

    for failure in (missing, wrong, no_scheme):
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(missing.value)
    assert info is not None and info.reason == "MISSING_TOKEN"
    info = error_info(wrong.value)
    assert info is not None and info.reason == "INVALID_TOKEN"
    assert servicer.calls == 1  # only the authorised call reached the servicer
    assert reply.normalized_number == "ok"
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "friday.persona.v1.PersonaService" in listed


async def test_tls_round_trip(certs: CertFiles) -> None:
    tls = ServerTLSConfig(cert_file=certs.server_cert, key_file=certs.server_key)
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0, tls=tls), [probe_spec(ProbeServicer())]) as server:
        target = f"localhost:{server.port}"
        async with create_channel(target, tls=ClientTLSConfig(ca_file=certs.ca)) as channel:
            assert (await _get(channel)).normalized_number == "ok"
        # a client that trusts another CA refuses the server
        async with create_channel(target, tls=ClientTLSConfig(ca_file=certs.other_ca)) as distrusting:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _get(distrusting)
        # a plaintext client cannot talk to a TLS server
        async with create_channel(target) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as plain:
                await _get(plaintext)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate(certs: CertFiles) -> None:
    tls = ServerTLSConfig(cert_file=certs.server_cert, key_file=certs.server_key, client_ca_file=certs.ca)
    config = ServerConfig(host="127.0.0.1", port=0, tls=tls, auth_token=TOKEN)
    async with GrpcServer(config, [probe_spec(ProbeServicer())]) as server:
        target = f"localhost:{server.port}"
        with_cert = ClientTLSConfig(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
        async with create_channel(target, tls=with_cert, bearer_token=TOKEN) as channel:
            assert (await _get(channel)).normalized_number == "ok"
        async with create_channel(target, tls=ClientTLSConfig(ca_file=certs.ca), bearer_token=TOKEN) as no_cert:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _get(no_cert)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_server_name_override_for_ip_targets(certs: CertFiles) -> None:
    tls = ServerTLSConfig(cert_file=certs.server_cert, key_file=certs.server_key)
    async with GrpcServer(ServerConfig(host="127.0.0.1", port=0, tls=tls), [probe_spec(ProbeServicer())]) as server:
        client_tls = ClientTLSConfig(ca_file=certs.ca, server_name_override="localhost")
        async with create_channel(f"127.0.0.1:{server.port}", tls=client_tls) as channel:
            assert (await _get(channel)).normalized_number == "ok"
