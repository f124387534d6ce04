"""The new-number limit: CRM fetches for numbers PersonaService never saw are taken
from a token bucket per peer and one overall; over a limit the answer comes at once,
as if the CRM were unavailable for that number. Known numbers are never held back."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from friday.persona.v1.persona_pb2 import PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.persona.admission import NewNumberAdmission, NewNumberLimits
from services.persona.client import PersonaClient, error_reason
from services.persona.config import CacheConfig
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.persona.conftest import ACME, StartPersona, fast_config

KNOWN = "+918655701159"
KNOWN_NATIONAL = "8655701159"
NOT_IN_CRM = "+918655700000"


def _never_seen(i: int) -> str:
    return f"+9170{i:08d}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_peer_has_its_own_bucket_inside_the_overall_one() -> None:
    clock = Clock()
    admission = NewNumberAdmission(NewNumberLimits(rate=1, burst=5, peer_rate=1, peer_burst=3), clock=clock)
    assert [admission.admit("10.0.0.1") for _ in range(4)] == [None, None, None, "peer"]
    # another peer has its own share, until the overall bucket is empty
    assert [admission.admit("10.0.0.2") for _ in range(3)] == [None, None, "overall"]
    clock.now += 1.0  # one more token in each bucket
    assert admission.admit("10.0.0.2") is None  # the overall refusal did not spend 10.0.0.2's share
    assert admission.admit("10.0.0.1") == "overall"


def test_exempt_peers_are_held_to_the_overall_limit_only() -> None:
    limits = NewNumberLimits(rate=1, burst=10, peer_rate=1, peer_burst=2, peer_exempt=("10.8.0.0/16", "::1"))
    admission = NewNumberAdmission(limits, clock=Clock())
    assert [admission.admit("10.8.3.4") for _ in range(6)] == [None] * 6
    assert [admission.admit("::1") for _ in range(4)] == [None] * 4
    assert admission.admit("10.9.0.1") == "overall"


def test_a_rate_of_zero_turns_a_limit_off() -> None:
    admission = NewNumberAdmission(NewNumberLimits(rate=0, burst=1, peer_rate=0, peer_burst=1), clock=Clock())
    assert all(admission.admit("10.0.0.1") is None for _ in range(1000))


async def test_over_the_limit_a_never_seen_number_is_answered_at_once_and_known_ones_never_wait(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(KNOWN_NATIONAL, ACME)
    limits = NewNumberLimits(rate=0.001, burst=100, peer_rate=0.001, peer_burst=4)
    # ttl 0: the known number's copy is stale at once, so it needs the CRM again (in the background)
    config = fast_config(crm, new_numbers=limits, cache=CacheConfig(ttl_seconds=0.0))
    running = await start_persona(config, metrics=True)
    client = running.client
    assert (await client.get_persona(KNOWN)).source == PersonaSource.PERSONA_SOURCE_CRM  # token 1
    not_found = await client.get_persona(NOT_IN_CRM, allow_default=True)  # token 2, cached negatively
    assert not_found.default_reason == DefaultReason.DEFAULT_REASON_NOT_FOUND

    flood = await asyncio.gather(*(client.get_persona(_never_seen(i), allow_default=True) for i in range(10)))
    assert crm.total_requests == 4  # the known number, the 404, and the two tokens left
    refused = [r for r in flood if r.default_reason == DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE]
    assert len(refused) == 8 and all(r.source == PersonaSource.PERSONA_SOURCE_DEFAULT for r in refused)

    with pytest.raises(grpc.aio.AioRpcError) as exhausted:
        await client.get_persona(_never_seen(99))
    assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(exhausted.value) == "NEW_NUMBER_RATE_LIMITED"

    # Known numbers are never held back: cached, negatively cached, and stale (refreshed).
    assert (await client.get_persona(KNOWN)).persona.persona_id == "acme"
    again = await client.get_persona(NOT_IN_CRM, allow_default=True)
    assert again.default_reason == DefaultReason.DEFAULT_REASON_NOT_FOUND
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    assert sample(metrics, "persona_new_number_fetches_refused_total", limit="peer") == 9
    assert sample(metrics, "persona_default_served_total", why="rate_limited") == 8


async def test_two_peers_do_not_share_a_bucket(crm: CrmStandIn, start_persona: StartPersona) -> None:
    limits = NewNumberLimits(rate=0.001, burst=5, peer_rate=0.001, peer_burst=3)
    running = await start_persona(fast_config(crm, new_numbers=limits), host="[::]")
    port = running.server.port
    async with PersonaClient(f"ipv4:127.0.0.1:{port}") as v4, PersonaClient(f"ipv6:[::1]:{port}") as v6:
        try:
            await v6.get_persona(NOT_IN_CRM, allow_default=True)
        except grpc.aio.AioRpcError as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"no IPv6 loopback here: {exc.code().name}")

        async def reasons(client: PersonaClient, numbers: range) -> list[int]:
            return [(await client.get_persona(_never_seen(i), allow_default=True)).default_reason for i in numbers]

        found, limited = DefaultReason.DEFAULT_REASON_NOT_FOUND, DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE
        # ::1 has used one of its three; 127.0.0.1 gets its own three
        assert await reasons(v4, range(0, 4)) == [found, found, found, limited]
        assert await reasons(v6, range(10, 13)) == [found, limited, limited]  # the overall five are gone
