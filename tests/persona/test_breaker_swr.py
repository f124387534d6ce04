"""Stale-while-revalidate and the CRM breaker, end to end on real gRPC and the CRM
stand-in: a stale persona is answered at once and refreshed behind the answer; after
consecutive CRM failures the CRM is left alone (stale and cold lookups answered
without it) until one probe finds it back; health and metrics say so throughout."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1.persona_pb2 import PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.grpc_runtime import create_channel
from services.persona.admission import NewNumberLimits
from services.persona.config import CacheConfig
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.persona.conftest import ACME, Running, StartPersona, background_refreshes, fast_config, until

WARM = "+918655701159"
WARM_NATIONAL = "8655701159"
SERVICE = "friday.persona.v1.PersonaService"


def _cold(i: int) -> str:
    return f"+9170{i:08d}"


async def _status(running: Running) -> int:
    async with create_channel(running.server.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=3
        )
    return reply.status


async def _metrics(running: Running) -> str:
    assert running.server.metrics_port is not None
    return (await http_get(running.server.metrics_port))[1]


async def test_a_stale_persona_is_answered_at_once_and_refreshed_behind_the_answer(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(WARM_NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0)), metrics=True)
    assert (await running.client.get_persona(WARM)).source == PersonaSource.PERSONA_SOURCE_CRM

    crm.set_persona(WARM_NATIONAL, {**ACME, "persona_name": "Maya v2"})
    crm.set_latency(0.5)  # the refresh is still at the CRM when the answer arrives
    stale = await running.client.get_persona(WARM)
    assert (stale.source, stale.persona.display_name) == (PersonaSource.PERSONA_SOURCE_STALE_CACHE, "Maya from Acme")
    assert stale.age_seconds > 0

    # Callers during the refresh join it rather than asking the CRM again (single flight).
    during = await asyncio.gather(*(running.client.get_persona(WARM) for _ in range(5)))
    assert {r.source for r in during} == {PersonaSource.PERSONA_SOURCE_STALE_CACHE}
    assert await background_refreshes(running, 1) == {"ok": 1, "not_found": 0, "failed": 0, "skipped": 0}
    assert crm.requests_for(WARM_NATIONAL) == 2

    crm.set_latency(0.0)
    refreshed = await running.client.get_persona(WARM)
    assert refreshed.persona.display_name == "Maya v2"


async def test_the_breaker_opens_after_consecutive_failures_and_one_probe_closes_it(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(WARM_NATIONAL, ACME)
    config = fast_config(
        crm,
        cache=CacheConfig(ttl_seconds=0.0),
        new_numbers=NewNumberLimits(rate=0, peer_rate=0),
        max_attempts=2,
        breaker_failures=3,
        breaker_cooldown_seconds=0.5,
    )
    running = await start_persona(config, metrics=True)
    client = running.client
    await client.get_persona(WARM)

    crm.fail_share(1.0)  # every CRM request fails from here
    for i in range(3):  # three cold numbers, each failing after its retries
        assert (await client.get_persona(_cold(i), allow_default=True)).source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert crm.total_requests == 1 + 3 * 2

    # Open: nothing reaches the CRM; a stale number gets its copy, a cold one the default, at once.
    stale = await client.get_persona(WARM, allow_default=True)
    assert stale.source == PersonaSource.PERSONA_SOURCE_STALE_CACHE
    cold = await client.get_persona(_cold(10), allow_default=True)
    assert cold.default_reason == DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE
    assert crm.total_requests == 1 + 3 * 2
    assert await _status(running) == health_pb2.HealthCheckResponse.NOT_SERVING
    metrics = await _metrics(running)
    assert sample(metrics, "persona_crm_breaker_state") == 2
    assert sample(metrics, "persona_crm_breaker_short_circuits_total") == 1
    assert sample(metrics, "persona_background_refreshes_total", outcome="skipped") == 1

    # After the cool-down one lookup tests the CRM (it is back, and slow); the others still
    # get their answer at once meanwhile.
    await asyncio.sleep(0.6)
    crm.fail_share(0.0)
    crm.set_latency(0.3)
    probe = asyncio.create_task(client.get_persona(_cold(20), allow_default=True))
    await until(lambda: crm.total_requests > 1 + 3 * 2)
    meanwhile = await client.get_persona(_cold(21), allow_default=True)
    assert meanwhile.default_reason == DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE
    assert sample(await _metrics(running), "persona_crm_breaker_state") == 1
    assert (await probe).default_reason == DefaultReason.DEFAULT_REASON_NOT_FOUND  # the CRM answered
    assert crm.total_requests == 1 + 3 * 2 + 1

    assert await _status(running) == health_pb2.HealthCheckResponse.SERVING
    crm.set_latency(0.0)
    assert (await client.get_persona(_cold(21), allow_default=True)).default_reason == (
        DefaultReason.DEFAULT_REASON_NOT_FOUND
    )
    metrics = await _metrics(running)
    assert sample(metrics, "persona_crm_breaker_state") == 0
    assert [
        sample(metrics, "persona_crm_breaker_transitions_total", to=s) for s in ("open", "half_open", "closed")
    ] == [
        1,
        1,
        1,
    ]


async def test_a_failed_probe_keeps_the_crm_alone_for_another_cooldown(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    config = fast_config(
        crm,
        new_numbers=NewNumberLimits(rate=0, peer_rate=0),
        max_attempts=1,
        breaker_failures=1,
        breaker_cooldown_seconds=0.3,
    )
    running = await start_persona(config, metrics=True)
    crm.fail_share(1.0)
    await running.client.get_persona(_cold(0), allow_default=True)  # opens it
    await asyncio.sleep(0.35)
    await running.client.get_persona(_cold(1), allow_default=True)  # the probe: fails
    assert crm.total_requests == 2
    await running.client.get_persona(_cold(2), allow_default=True)  # open again: not asked
    assert crm.total_requests == 2
    assert await _status(running) == health_pb2.HealthCheckResponse.NOT_SERVING
    metrics = await _metrics(running)
    assert sample(metrics, "persona_crm_breaker_transitions_total", to="open") == 2


async def test_answers_from_the_crm_that_are_refused_do_not_open_the_breaker(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    # A CRM that answers garbage is up: each number's answer is its own problem.
    config = fast_config(crm, new_numbers=NewNumberLimits(rate=0, peer_rate=0), breaker_failures=2)
    running = await start_persona(config, metrics=True)
    for i in range(5):
        crm.set_response(f"70{i:08d}", 200, b"<html>not a persona</html>", content_type="text/html")
        await running.client.get_persona(_cold(i), allow_default=True)
    assert crm.total_requests == 5
    assert sample(await _metrics(running), "persona_crm_breaker_state") == 0
