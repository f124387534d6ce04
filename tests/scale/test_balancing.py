"""The gateway's upstream channel over several replicas: round_robin spreads the
calls, and client-side health checking (healthCheckConfig, grpc.health.v1 Watch)
takes a NOT_SERVING replica out of rotation — real PersonaService servers on real
sockets, the gateway's own channel and client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest

from services.grpc_runtime import GrpcServer, ServerConfig
from services.grpc_runtime.channel import create_channel
from services.grpc_runtime.health import NOT_SERVING, SERVING
from services.persona.config import PersonaConfig
from services.persona.server import build_server
from services.webhook_gateway.errors import UpstreamError
from services.webhook_gateway.upstreams import GrpcPersonaLookup, upstream_channel

NUMBER = "+918655701159"  # in the bundled example personas


def served(server: GrpcServer) -> float:
    """GetPersona calls this replica answered (its own server metrics)."""
    total = 0.0
    for family in server.registry.collect():
        for s in family.samples:
            if s.name == "grpc_server_handled_total" and "GetPersona" in s.labels.get("grpc_method", ""):
                total += s.value
    return total


@pytest.fixture
async def replicas() -> AsyncIterator[list[GrpcServer]]:
    servers = [build_server(PersonaConfig(), ServerConfig(host="127.0.0.1", port=0)) for _ in range(2)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop(0)


async def _calls(lookup: GrpcPersonaLookup, n: int) -> list[bool]:
    """n sequential GetPersona calls; True for each that succeeded."""
    results = []
    for _ in range(n):
        try:
            await lookup.get_persona(NUMBER, caller_number="", timeout=2, trace_id="t")
            results.append(True)
        except UpstreamError:
            results.append(False)
    return results


async def _until_only(lookup: GrpcPersonaLookup, only: GrpcServer, others: list[GrpcServer]) -> None:
    """Calls until 10 in a row succeed on `only` alone (the channel has seen the health
    change); bounded so a channel that never converges fails the test."""
    for _ in range(200):
        before = [served(o) for o in others]
        if all(await _calls(lookup, 10)) and [served(o) for o in others] == before:
            return
    raise AssertionError("the channel kept sending calls to a replica it should have skipped")


async def test_round_robin_spreads_calls_and_skips_not_serving_and_dead_replicas(
    replicas: list[GrpcServer],
) -> None:
    a, b = replicas
    async with upstream_channel(f"ipv4:{a.address},{b.address}", None) as channel:
        lookup = GrpcPersonaLookup(channel)
        assert all(await _calls(lookup, 20))
        assert served(a) > 0 and served(b) > 0  # round_robin, not pick_first

        # a drains (what SIGTERM does first): the Watch stream tells the channel at once.
        await a.health.servicer.set("", NOT_SERVING)
        await _until_only(lookup, b, [a])
        before_a, before_b = served(a), served(b)
        assert all(await _calls(lookup, 20))
        assert (served(a), served(b)) == (before_a, before_b + 20)

        # a is back; b dies: every call lands on a.
        await a.health.servicer.set("", SERVING)
        await b.stop(0)
        await _until_only(lookup, a, [])
        before_a = served(a)
        assert all(await _calls(lookup, 20))
        assert served(a) == before_a + 20


async def test_without_health_check_config_a_not_serving_replica_still_gets_calls(
    replicas: list[GrpcServer],
) -> None:
    """The control: it is healthCheckConfig that takes the replica out, not round_robin."""
    a, b = replicas
    config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
    async with create_channel(f"ipv4:{a.address},{b.address}", options=[("grpc.service_config", config)]) as channel:
        lookup = GrpcPersonaLookup(channel)
        assert all(await _calls(lookup, 4))
        await a.health.servicer.set("", NOT_SERVING)
        before_a = served(a)
        assert all(await _calls(lookup, 20))
        assert served(a) > before_a


async def test_all_replicas_not_serving_fails_fast_with_unavailable(replicas: list[GrpcServer]) -> None:
    """No healthy replica: the call fails (the gateway answers 503, LiveKit redelivers)
    instead of reaching a replica that is draining."""
    a, b = replicas
    async with upstream_channel(f"ipv4:{a.address},{b.address}", None) as channel:
        lookup = GrpcPersonaLookup(channel)
        assert all(await _calls(lookup, 2))
        for server in replicas:
            await server.health.servicer.set("", NOT_SERVING)
        before = served(a) + served(b)
        for _ in range(200):
            try:
                await lookup.get_persona(NUMBER, caller_number="", timeout=0.5, trace_id="t")
            except UpstreamError as exc:
                assert exc.code in (grpc.StatusCode.UNAVAILABLE.name, grpc.StatusCode.DEADLINE_EXCEEDED.name)
                assert exc.retryable
                break
        else:
            raise AssertionError("calls kept succeeding with every replica NOT_SERVING")
        # once the channel knows, nothing more reaches the draining replicas
        after = served(a) + served(b)
        assert not any(await _calls(lookup, 3))
        assert served(a) + served(b) == after
        assert after >= before


async def test_a_dns_target_resolves_through_the_same_balanced_channel(replicas: list[GrpcServer]) -> None:
    """`dns:///name:port` (a headless Kubernetes Service: one A record per pod) goes through
    the same round_robin + health-checked channel. Locally only `localhost` is resolvable,
    so this shows the DNS form is accepted and served; several A records are the resolver's job."""
    a, _ = replicas
    async with upstream_channel(f"dns:///localhost:{a.port}", None) as channel:
        lookup = GrpcPersonaLookup(channel)
        before = served(a)
        assert all(await _calls(lookup, 5))
        assert served(a) == before + 5
