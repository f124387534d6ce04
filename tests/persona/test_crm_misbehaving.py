"""A CRM that misbehaves in ways httpx/protobuf do not report as transport errors
(bad gzip, absurd nesting, huge bodies) must still end in stale/default/UNAVAILABLE,
never in gRPC UNKNOWN."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1.persona_pb2 import PersonaSource
from services.grpc_runtime import create_channel
from services.persona.client import error_reason
from services.persona.config import CacheConfig
from services.persona.crm import MAX_BODY_BYTES
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.persona.conftest import ACME, Running, StartPersona, background_refreshes, fast_config

NUMBER = "+918655701159"
NATIONAL = "8655701159"
OTHER = "+919876543210"
OTHER_NATIONAL = "9876543210"


async def _crm_health(running: Running) -> int:
    async with create_channel(running.server.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="friday.persona.v1.PersonaService"), timeout=3
        )
    return reply.status


def _nested_lists(depth: int) -> bytes:
    return b'{"personality": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}"


def _nested_objects(depth: int) -> bytes:
    return b'{"personality": "x", "deep": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


async def test_bad_gzip_body_serves_stale_and_reports_the_crm_unhealthy(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0)), metrics=True)
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM

    crm.set_response(NATIONAL, 200, b"this is not gzip", headers={"Content-Encoding": "gzip"})
    stale = await running.client.get_persona(NUMBER)
    assert stale.source == PersonaSource.PERSONA_SOURCE_STALE_CACHE and stale.persona.persona_id == "acme"
    assert await background_refreshes(running, 1) == {"ok": 0, "not_found": 0, "failed": 1, "skipped": 0}
    assert await _crm_health(running) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert crm.requests_for(NATIONAL) == 1 + 3  # a decoding failure is retried like a transport error

    crm.set_response(OTHER_NATIONAL, 200, b"this is not gzip", headers={"Content-Encoding": "gzip"})
    error = await _fails(running.client.get_persona(OTHER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE and error_reason(error) == "CRM_UNAVAILABLE"
    default = await running.client.get_persona(OTHER, allow_default=True)
    assert default.source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    assert sample(metrics, "persona_crm_errors_total", kind="transport") >= 3


@pytest.mark.parametrize(
    "body",
    [
        _nested_lists(900),  # json.loads copes, Struct.update recurses too deep
        _nested_lists(200_000),  # json.loads itself recurses too deep
        _nested_objects(40),  # fits a Struct but no protobuf parser would decode it again
    ],
    ids=["lists-900", "lists-200k", "objects-40"],
)
async def test_absurdly_nested_extras_are_a_malformed_answer(
    crm: CrmStandIn, start_persona: StartPersona, body: bytes
) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0)), metrics=True)
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM

    crm.set_response(NATIONAL, 200, body)
    stale = await running.client.get_persona(NUMBER)
    assert stale.source == PersonaSource.PERSONA_SOURCE_STALE_CACHE
    assert (await background_refreshes(running, 1))["failed"] == 1
    assert crm.requests_for(NATIONAL) == 2  # malformed: not retried
    crm.set_response(OTHER_NATIONAL, 200, body)
    error = await _fails(running.client.get_persona(OTHER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    assert sample(metrics, "persona_crm_errors_total", kind="malformed") == 2


async def _fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value


async def test_a_body_over_the_size_cap_is_a_malformed_answer(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0)), metrics=True)
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM

    # A valid persona, just far too big: refused on size alone, and not asked for again.
    huge = json.dumps({**ACME, "padding": "x" * (MAX_BODY_BYTES + 1)}).encode()
    crm.set_response(NATIONAL, 200, huge)
    stale = await running.client.get_persona(NUMBER)
    assert stale.source == PersonaSource.PERSONA_SOURCE_STALE_CACHE
    assert (await background_refreshes(running, 1))["failed"] == 1
    assert crm.requests_for(NATIONAL) == 2
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    assert sample(metrics, "persona_crm_errors_total", kind="malformed") == 1

    # just under the cap is still a persona: the next refresh stores it
    crm.set_response(NATIONAL, 200, json.dumps({**ACME, "padding": "x" * (MAX_BODY_BYTES - 1000)}).encode())
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_STALE_CACHE
    assert (await background_refreshes(running, 2))["ok"] == 1
    refreshed = await running.client.get_persona(NUMBER)
    assert len(refreshed.persona.extras["padding"]) == MAX_BODY_BYTES - 1000
