"""Bearer-token auth (health and reflection stay open) and TLS / mTLS round trips
with certificates generated here."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common.env import ConfigError
from services.common.ports import ServicePorts
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
ADMIN_TOKEN = "adm1n-token-for-tests"


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
            # Refusals are built once per method and reason: each later one says the same.
            with pytest.raises(grpc.aio.AioRpcError) as missing_again:
                await _get(anonymous)
            with pytest.raises(grpc.aio.AioRpcError) as wrong_again:
                await _get(anonymous, metadata=(("authorization", "Bearer nope-again"),))
            # health stays open without a token
            health = await health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=3)
        async with create_channel(server.address, bearer_token=TOKEN) as authorised:
            reply = await _get(authorised)
        # reflection stays open too
        listed = await _grpcurl("-plaintext", server.address, "list")

    for failure in (missing, wrong, no_scheme, missing_again, wrong_again):
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for failure in (missing, missing_again):
        info = error_info(failure.value)
        assert info is not None and info.reason == "MISSING_TOKEN"
    for failure in (wrong, no_scheme, wrong_again):
        info = error_info(failure.value)
        assert info is not None and info.reason == "INVALID_TOKEN"
    assert servicer.calls == 1  # only the authorised call reached the servicer
    assert reply.normalized_number == "ok"
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "friday.persona.v1.PersonaService" in listed


async def _invalidate(channel: grpc.aio.Channel, **kw: object) -> persona_service_pb2.InvalidatePersonaResponse:
    stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
    return await stub.InvalidatePersona(
        persona_service_pb2.InvalidatePersonaRequest(dialed_number="x"), timeout=3, **kw
    )


async def _refusal(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    info = error_info(failure.value)
    return failure.value.code(), info.reason if info is not None else ""


async def test_admin_methods_require_the_admin_token_and_only_it() -> None:
    servicer = ProbeServicer()
    config = ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN, admin_token=ADMIN_TOKEN)
    spec = probe_spec(servicer, admin_methods=("InvalidatePersona",))
    async with GrpcServer(config, [spec]) as server:
        async with create_channel(server.address, bearer_token=TOKEN) as ordinary:
            assert (await _get(ordinary)).normalized_number == "ok"
            # the ordinary token (what the gateway holds) does not open the admin method
            assert await _refusal(_invalidate(ordinary)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_TOKEN")
        async with create_channel(server.address, bearer_token=ADMIN_TOKEN) as admin:
            assert (await _invalidate(admin)).normalized_number == "invalidated"
            # one token per method: the admin token is not a second ordinary token
            assert await _refusal(_get(admin)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_TOKEN")
        async with create_channel(server.address) as anonymous:
            assert await _refusal(_invalidate(anonymous)) == (grpc.StatusCode.UNAUTHENTICATED, "MISSING_TOKEN")
            near_miss = (("authorization", f"Bearer {ADMIN_TOKEN}x"),)
            assert await _refusal(_invalidate(anonymous, metadata=near_miss)) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "INVALID_TOKEN",
            )
            health = await health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=3)
        listed = await _grpcurl("-plaintext", server.address, "list")
    assert servicer.calls == 2  # the two authorised calls only
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "friday.persona.v1.PersonaService" in listed


async def test_an_admin_token_alone_guards_only_the_admin_methods() -> None:
    servicer = ProbeServicer()
    config = ServerConfig(host="127.0.0.1", port=0, admin_token=ADMIN_TOKEN)
    async with GrpcServer(config, [probe_spec(servicer, admin_methods=("InvalidatePersona",))]) as server:
        async with create_channel(server.address) as anonymous:
            assert (await _get(anonymous)).normalized_number == "ok"
            assert await _refusal(_invalidate(anonymous)) == (grpc.StatusCode.UNAUTHENTICATED, "MISSING_TOKEN")
        async with create_channel(server.address, bearer_token=ADMIN_TOKEN) as admin:
            assert (await _invalidate(admin)).normalized_number == "invalidated"


async def test_without_an_admin_token_admin_methods_take_the_ordinary_token() -> None:
    config = ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN)
    async with GrpcServer(config, [probe_spec(ProbeServicer(), admin_methods=("InvalidatePersona",))]) as server:
        async with create_channel(server.address, bearer_token=TOKEN) as ordinary:
            assert (await _invalidate(ordinary)).normalized_number == "invalidated"
        async with create_channel(server.address) as anonymous:
            assert await _refusal(_invalidate(anonymous)) == (grpc.StatusCode.UNAUTHENTICATED, "MISSING_TOKEN")


async def test_admin_token_misconfigurations_are_refused() -> None:
    with pytest.raises(ConfigError, match="must differ"):
        ServerConfig(auth_token=TOKEN, admin_token=TOKEN)
    with pytest.raises(ConfigError, match="PERSONA_ADMIN_TOKEN must differ from PERSONA_TOKEN"):
        ServerConfig.from_env(
            "PERSONA",
            ServicePorts(grpc=0, metrics=0),
            admin_token_env="PERSONA_ADMIN_TOKEN",
            environ={"PERSONA_TOKEN": TOKEN, "PERSONA_ADMIN_TOKEN": TOKEN},
        )
    with pytest.raises(ValueError, match="no method"):
        probe_spec(ProbeServicer(), admin_methods=("DropEverything",))
    # an admin token that would guard nothing is a mistake, not a silent no-op
    server = GrpcServer(ServerConfig(host="127.0.0.1", port=0, admin_token=ADMIN_TOKEN), [probe_spec(ProbeServicer())])
    with pytest.raises(ValueError, match="no service has admin methods"):
        await server.start()


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
