"""PersonaService end to end: real gRPC on port 0, the CRM stand-in, real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1.persona_pb2 import PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.grpc_runtime import create_channel
from services.persona.client import PersonaClient, error_reason
from services.persona.config import CacheConfig
from services.persona.numbers import CrmNumberFormat
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.persona.conftest import ACME, REDIS_URL, StartPersona, background_refreshes, fast_config

NUMBER = "+918655701159"
NATIONAL = "8655701159"  # what the CRM sees with the default (national) format


async def _until(condition: Callable[[], bool], poll_seconds: float = 0.005) -> None:
    """Waits for a condition in another process/task (a test's sync point, not a timing check)."""
    for _ in range(int(5 / poll_seconds)):
        if condition():
            return
        await asyncio.sleep(poll_seconds)
    raise AssertionError("condition never became true")


async def _fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value


async def test_crm_500_500_200_gives_the_crm_persona_after_retries(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(NATIONAL, ACME)
    crm.fail_next(2, status=500)
    running = await start_persona(fast_config(crm))
    reply = await running.client.get_persona(NUMBER)
    assert reply.source == PersonaSource.PERSONA_SOURCE_CRM
    assert reply.persona.display_name == "Maya from Acme"
    assert reply.persona.extras["crm_owner"] == "sales-team"
    assert reply.normalized_number == NUMBER and reply.age_seconds == 0
    assert crm.requests_for(NATIONAL) == 3
    # and now it is cached
    again = await running.client.get_persona("08655701159")
    assert again.source == PersonaSource.PERSONA_SOURCE_CACHE
    assert crm.requests_for(NATIONAL) == 3


async def test_retries_exhausted_stale_then_default_then_error(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    # ttl 0: every lookup asks the CRM, so a failure finds only a stale entry.
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0), max_attempts=3), metrics=True)
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM

    crm.fail_next(3, status=503)
    stale = await running.client.get_persona(NUMBER)  # at once; the refresh runs behind it
    assert stale.source == PersonaSource.PERSONA_SOURCE_STALE_CACHE
    assert stale.persona.persona_id == "acme"
    assert (await background_refreshes(running, 1))["failed"] == 1
    assert crm.requests_for(NATIONAL) == 4

    other = "+919876543210"
    crm.fail_next(3, status=500)
    default = await running.client.get_persona(other, allow_default=True)
    assert default.source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert default.persona.persona_id == "default"
    assert default.default_reason == DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE
    assert stale.default_reason == DefaultReason.DEFAULT_REASON_UNSPECIFIED

    crm.fail_next(3, status=500)
    error = await _fails(running.client.get_persona(other))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(error) == "CRM_UNAVAILABLE"


async def test_stale_is_bounded_by_max_staleness(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0, max_stale_seconds=0.0)))
    await running.client.get_persona(NUMBER)
    await asyncio.sleep(0.01)  # the entry is now older than the (zero) maximum staleness
    crm.fail_next(3, status=500)
    error = await _fails(running.client.get_persona(NUMBER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_404_is_not_found_or_default_and_cached_negatively(crm: CrmStandIn, start_persona: StartPersona) -> None:
    running = await start_persona(fast_config(crm))
    error = await _fails(running.client.get_persona(NUMBER))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error) == "PERSONA_NOT_FOUND"
    default = await running.client.get_persona(NUMBER, allow_default=True)
    assert default.source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert default.default_reason == DefaultReason.DEFAULT_REASON_NOT_FOUND
    assert crm.requests_for(NATIONAL) == 1  # the negative cache answered the second lookup


async def test_other_4xx_is_not_retried(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_response(NATIONAL, 403, b'{"error":"forbidden"}')
    running = await start_persona(fast_config(crm))
    error = await _fails(running.client.get_persona(NUMBER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert crm.requests_for(NATIONAL) == 1


async def test_429_is_retried(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    crm.fail_next(1, status=429)
    running = await start_persona(fast_config(crm))
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM
    assert crm.requests_for(NATIONAL) == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"<html>oops</html>", "text/html"), (b'{"personality": ', "application/json"), (b"[]", "application/json")],
)
async def test_malformed_body_is_a_crm_failure(
    crm: CrmStandIn, start_persona: StartPersona, body: bytes, content_type: str
) -> None:
    crm.set_response(NATIONAL, 200, body, content_type=content_type)
    running = await start_persona(fast_config(crm), metrics=True)
    error = await _fails(running.client.get_persona(NUMBER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert (await running.client.get_persona(NUMBER, allow_default=True)).source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    assert sample(metrics, "persona_crm_errors_total", kind="malformed") >= 1


async def test_100_concurrent_cold_requests_make_one_crm_request(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    crm.set_latency(0.3)
    running = await start_persona(fast_config(crm), metrics=True)
    replies = await asyncio.gather(*(running.client.get_persona(NUMBER) for _ in range(100)))
    assert {r.persona.persona_id for r in replies} == {"acme"}
    assert crm.requests_for(NATIONAL) == 1
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    # every request either joined the fetch or (if it arrived after it) hit the cache
    joined = sample(metrics, "persona_coalesced_requests_total")
    hits = sample(metrics, "persona_cache_hits_total")
    assert joined + hits == 99 and joined > 0
    assert sample(metrics, "persona_requests_total", code="OK", source="crm") == 100 - hits


async def test_two_instances_share_redis(crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str) -> None:
    crm.set_persona(NATIONAL, ACME)
    config = fast_config(crm, cache=CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix))
    first = await start_persona(config)
    second = await start_persona(config)
    assert (await first.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM
    reply = await second.client.get_persona(NUMBER)
    assert reply.source == PersonaSource.PERSONA_SOURCE_CACHE
    assert reply.persona.display_name == "Maya from Acme"
    assert crm.requests_for(NATIONAL) == 1

    # invalidation through one instance refetches into the shared cache: the other sees the new copy
    crm.set_persona(NATIONAL, {**ACME, "persona_name": "Maya v2"})
    dropped = await second.client.invalidate_persona("08655701159")
    assert dropped.removed and dropped.refetched and dropped.normalized_number == NUMBER
    reply = await first.client.get_persona(NUMBER)
    assert (reply.source, reply.persona.display_name) == (PersonaSource.PERSONA_SOURCE_CACHE, "Maya v2")
    assert crm.requests_for(NATIONAL) == 2


async def test_invalidate_drops_the_in_process_entry(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm))
    await running.client.get_persona(NUMBER)
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CACHE
    crm.set_persona(NATIONAL, {**ACME, "persona_name": "Maya v2"})
    assert (await running.client.invalidate_persona(NUMBER)).removed
    reply = await running.client.get_persona(NUMBER)  # refetched by the invalidation itself
    assert (reply.source, reply.persona.display_name) == (PersonaSource.PERSONA_SOURCE_CACHE, "Maya v2")
    assert not (await running.client.invalidate_persona("+14155550100")).removed


async def test_redis_down_falls_back_to_the_in_process_cache(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(redis_url="redis://127.0.0.1:1/0")), metrics=True)
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CRM
    assert (await running.client.get_persona(NUMBER)).source == PersonaSource.PERSONA_SOURCE_CACHE
    assert crm.requests_for(NATIONAL) == 1
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    # one failure opens the breaker: the second lookup did not try Redis again
    assert sample(metrics, "persona_redis_errors_total", op="get") == 1


async def test_slow_crm_and_a_300ms_deadline(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    # Slow against the 300 ms deadline, and short: the CRM stand-in's shutdown waits for the
    # requests it is still sleeping on.
    crm.set_latency(1.5)
    running = await start_persona(fast_config(crm, attempt_timeout_seconds=2.0, max_attempts=3))
    # The server answers inside the caller's deadline (else the client would see its
    # own DEADLINE_EXCEEDED instead of a default persona) ...
    reply = await running.client.get_persona(NUMBER, allow_default=True, timeout=0.3)
    assert reply.source == PersonaSource.PERSONA_SOURCE_DEFAULT
    # ... and without a default it says the time ran out, with its own ErrorInfo.
    error = await _fails(running.client.get_persona("+919876543210", timeout=0.3))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_reason(error) == "DEADLINE_EXCEEDED"
    # one attempt each: no retry was started past the deadline
    assert crm.requests_for(NATIONAL) == 1 and crm.requests_for("9876543210") == 1


@pytest.mark.parametrize("bad", ["../../admin", "letters", "", "   ", "+91/../../x", "%2e%2e"])
async def test_bad_numbers_are_invalid_argument_without_crm_requests(
    crm: CrmStandIn, start_persona: StartPersona, bad: str
) -> None:
    running = await start_persona(fast_config(crm))
    error = await _fails(running.client.get_persona(bad, allow_default=True))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "INVALID_PHONE_NUMBER"
    invalidate = await _fails(running.client.invalidate_persona(bad))
    assert invalidate.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert crm.total_requests == 0


@pytest.mark.parametrize(
    ("fmt", "dialed", "segment"),
    [
        (CrmNumberFormat.NATIONAL, "+918655701159", "8655701159"),
        (CrmNumberFormat.E164, "08655701159", "+918655701159"),
        (CrmNumberFormat.AS_RECEIVED, "0865 570 1159", "0865 570 1159"),
    ],
)
async def test_number_format_reaching_the_crm(
    crm: CrmStandIn, start_persona: StartPersona, fmt: CrmNumberFormat, dialed: str, segment: str
) -> None:
    crm.set_persona(segment, ACME)
    running = await start_persona(fast_config(crm, number_format=fmt))
    reply = await running.client.get_persona(dialed)
    assert reply.source == PersonaSource.PERSONA_SOURCE_CRM and reply.normalized_number == NUMBER
    assert crm.requests_for(segment) == 1 and crm.total_requests == 1
    assert "/" not in crm.request_log[0].raw_path.removeprefix(crm.base_path + "/")


async def test_default_region_is_configurable(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona("+14155550100", ACME)
    running = await start_persona(replace(fast_config(crm, number_format=CrmNumberFormat.E164), default_region="US"))
    reply = await running.client.get_persona("(415) 555-0100")
    assert reply.normalized_number == "+14155550100" and reply.source == PersonaSource.PERSONA_SOURCE_CRM


async def test_health_reflects_crm_reachability(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(ttl_seconds=0.0)))

    async def status(service: str) -> int:
        async with create_channel(running.server.address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3
            )
        return reply.status

    service = "friday.persona.v1.PersonaService"
    assert await status(service) == health_pb2.HealthCheckResponse.SERVING
    crm.fail_next(3, status=502)
    await running.client.get_persona(NUMBER, allow_default=True)
    assert await status(service) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await status("") == health_pb2.HealthCheckResponse.SERVING  # still answering (stale/default)
    await running.client.get_persona(NUMBER)
    assert await status(service) == health_pb2.HealthCheckResponse.SERVING


async def test_client_retry_does_not_multiply_crm_retries(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.fail_next(100, status=500)
    running = await start_persona(fast_config(crm, max_attempts=3))
    async with PersonaClient(running.server.address, timeout=5) as client:  # default retry policy
        error = await _fails(client.get_persona(NUMBER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert crm.requests_for(NATIONAL) == 3  # the service's retries only: the pushback stopped the channel's


async def test_client_retries_while_the_server_is_unreachable(crm: CrmStandIn, start_persona: StartPersona) -> None:
    # Transport-level UNAVAILABLE (nothing listening) is retried by the channel and finally reported.
    async with PersonaClient("127.0.0.1:1", timeout=2) as client:
        error = await _fails(client.get_persona(NUMBER))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("with_redis", [False, True], ids=["in-process", "redis-lease"])
async def test_a_later_caller_with_more_time_is_not_bound_by_the_first_callers_deadline(
    crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str, with_redis: bool
) -> None:
    crm.set_persona(NATIONAL, ACME)
    crm.set_latency(0.5)  # longer than the first caller's budget, well inside the second's
    cache = CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix) if with_redis else None
    running = await start_persona(fast_config(crm, cache=cache))
    # An impatient internal caller starts the CRM fetch ...
    first = asyncio.create_task(running.client.get_persona(NUMBER, allow_default=True, timeout=0.2))
    await _until(lambda: crm.requests_for(NATIONAL) > 0)
    # ... and a real call with a normal budget joins it.
    second = await running.client.get_persona(NUMBER, allow_default=True, timeout=3.0)
    assert second.source == PersonaSource.PERSONA_SOURCE_CRM and second.persona.persona_id == "acme"
    assert (await first).source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert crm.requests_for(NATIONAL) == 1
