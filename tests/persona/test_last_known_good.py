"""The last-known-good store: numbers that were served a persona keep it for
stale-on-error, whatever else passes through the cache's LRU."""

from __future__ import annotations

import asyncio

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.persona.admission import NewNumberLimits
from services.persona.cache_entry import CacheEntry
from services.persona.config import CacheConfig
from services.persona.last_known_good import LastKnownGood
from services.testing.crm import CrmStandIn
from tests.persona.conftest import ACME, StartPersona, fast_config

REAL = "+918655701159"
REAL_NATIONAL = "8655701159"
NO_LIMIT = NewNumberLimits(rate=0, peer_rate=0)


def test_bounded_least_recently_served_first_and_never_older_than_max_stale() -> None:
    store = LastKnownGood(max_entries=2, max_age_seconds=100)
    a, b, c = (CacheEntry(Persona(persona_id=name), fetched_at=1000.0) for name in "abc")
    store.remember("a", a)
    store.remember("b", b)
    store.remember("a", a)  # served again: b is now the least recently served
    store.remember("c", c)
    assert (store.get("a", 1000.0), store.get("b", 1000.0), store.get("c", 1000.0)) == (a, None, c)
    assert store.get("a", 1100.5) is None  # older than the maximum staleness: never served, dropped
    assert len(store) == 1


def test_it_keeps_personas_only_and_the_newest_copy() -> None:
    store = LastKnownGood(max_entries=10, max_age_seconds=100)
    store.remember("none", CacheEntry(None, fetched_at=1000.0))
    assert store.get("none", 1000.0) is None
    newer, older = CacheEntry(Persona(persona_id="v2"), 1050.0), CacheEntry(Persona(persona_id="v1"), 1000.0)
    store.remember("x", newer)
    store.remember("x", older)  # a slower replica's older copy does not replace it
    assert store.get("x", 1050.0) == newer
    assert store.forget("x") and not store.forget("x")


async def test_a_flood_that_flushes_the_cache_leaves_real_numbers_their_persona(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(REAL_NATIONAL, ACME)
    config = fast_config(crm, cache=CacheConfig(max_entries=20), new_numbers=NO_LIMIT, max_attempts=1)
    running = await start_persona(config)
    assert (await running.client.get_persona(REAL)).source == PersonaSource.PERSONA_SOURCE_CRM

    # 100 made-up numbers (404s, cached negatively) push the real one out of the 20-entry LRU ...
    for start in range(0, 100, 25):
        await asyncio.gather(
            *(running.client.get_persona(f"+9170{i:08d}", allow_default=True) for i in range(start, start + 25))
        )
    await crm.stop()  # ... and then the CRM goes down
    reply = await running.client.get_persona(REAL, allow_default=True)
    assert (reply.source, reply.persona.persona_id) == (PersonaSource.PERSONA_SOURCE_STALE_CACHE, "acme")


async def test_invalidate_and_a_404_drop_the_last_known_persona(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(REAL_NATIONAL, ACME)
    # nothing stays in the LRU, so whatever is served stale comes from the last-known-good store
    config = fast_config(crm, cache=CacheConfig(max_entries=1), new_numbers=NO_LIMIT, max_attempts=1)
    running = await start_persona(config)
    other = "+919876543210"

    await running.client.get_persona(REAL)
    # An invalidation refetches at once; with the CRM failing it drops instead, the last known
    # copy included (a refetch that works replaces both with what the CRM says now).
    crm.fail_share(1.0)
    done = await running.client.invalidate_persona(REAL)
    assert done.removed and not done.refetched
    reply = await running.client.get_persona(REAL, allow_default=True)
    assert reply.source == PersonaSource.PERSONA_SOURCE_DEFAULT  # invalidated: not served stale

    crm.fail_share(0.0)
    await running.client.get_persona(REAL)
    crm.remove_persona(REAL_NATIONAL)
    await running.client.get_persona(other, allow_default=True)  # evicts REAL from the LRU
    gone = await running.client.get_persona(REAL, allow_default=True)
    assert gone.default_reason == DefaultReason.DEFAULT_REASON_NOT_FOUND
    await running.client.get_persona(other, allow_default=True)  # evicts the negative entry in turn
    crm.fail_share(1.0)
    reply = await running.client.get_persona(REAL, allow_default=True)
    assert reply.source == PersonaSource.PERSONA_SOURCE_DEFAULT  # the CRM said it has none: not served stale
