"""One CRM request per number across PersonaService replicas sharing Redis (the
fetch lease), on real servers, the real Redis and the CRM stand-in."""

from __future__ import annotations

import asyncio

from friday.persona.v1.persona_pb2 import PersonaSource
from services.common.leases import RedisLeases
from services.common.redis_client import redis_client
from services.persona.config import CacheConfig
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.persona.conftest import ACME, REDIS_URL, StartPersona, fast_config

NUMBER = "+918655701159"
NATIONAL = "8655701159"


async def test_concurrent_cold_lookups_on_two_replicas_ask_the_crm_once(
    crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str
) -> None:
    crm.set_persona(NATIONAL, ACME)
    crm.set_latency(0.3)  # long enough that both replicas miss the cache while the fetch runs
    config = fast_config(crm, cache=CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix))
    replicas = [await start_persona(config, metrics=True) for _ in range(2)]

    replies = await asyncio.gather(*(replicas[i % 2].client.get_persona(NUMBER) for i in range(20)))

    assert crm.requests_for(NATIONAL) == 1
    assert {r.persona.display_name for r in replies} == {"Maya from Acme"}
    waits = 0.0
    for replica in replicas:
        assert replica.server.metrics_port is not None
        _, metrics = await http_get(replica.server.metrics_port)
        waits += sample(metrics, "persona_peer_fetch_waits_total")
    assert waits >= 1  # the replica that lost the lease waited for the other's fetch


async def test_a_lease_left_by_a_dead_replica_expires_and_the_lookup_takes_over(
    crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str
) -> None:
    crm.set_persona(NATIONAL, ACME)
    config = fast_config(crm, cache=CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix))
    running = await start_persona(config)
    # A replica that took the lease and was then SIGKILLed: nobody releases it, only its TTL frees it.
    dead = RedisLeases(redis_client(REDIS_URL), redis_prefix + "fetch-lease:")
    try:
        assert await dead.try_acquire(NUMBER, 0.4) is not None
        reply = await running.client.get_persona(NUMBER, timeout=3)
    finally:
        await dead.aclose()
    assert (reply.source, reply.persona.display_name) == (PersonaSource.PERSONA_SOURCE_CRM, "Maya from Acme")
    assert crm.requests_for(NATIONAL) == 1


async def test_a_holder_whose_fetch_failed_lets_the_waiter_fetch(
    crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str
) -> None:
    crm.set_persona(NATIONAL, ACME)
    config = fast_config(crm, cache=CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix))
    running = await start_persona(config)
    holder = RedisLeases(redis_client(REDIS_URL), redis_prefix + "fetch-lease:")
    try:
        token = await holder.try_acquire(NUMBER, 30)
        assert token is not None
        lookup = asyncio.ensure_future(running.client.get_persona(NUMBER, timeout=3))
        await asyncio.sleep(0.2)
        assert not lookup.done()  # waiting for the holder, not asking the CRM
        assert crm.requests_for(NATIONAL) == 0
        await holder.release(NUMBER, token)  # the holder gives up without storing anything
        reply = await lookup
    finally:
        await holder.aclose()
    assert reply.source == PersonaSource.PERSONA_SOURCE_CRM
    assert crm.requests_for(NATIONAL) == 1
