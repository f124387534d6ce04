"""A flood of distinct numbers or event ids cannot grow memory without limit: the
persona cache (LRU + TTL) and the gateway's event ledger (TTL + size bound) stay at
their configured size, and the memory they hold stops growing once they are full.
Nor can a flood of numbers push real numbers' personas out of reach: with the CRM
down afterwards, a real caller still gets its (stale) persona, not the default.

(tests/webhook_gateway/test_dedupe.py checks the ledger's entry count; this adds the
memory side.) Memory is measured with tracemalloc, relative to the structure's own
footprint when full, so the bound does not depend on the machine.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry, CachePolicy
from services.persona.config import CacheConfig
from services.persona.lookup import BreakerPolicy, PersonaLookup
from services.persona.memory_cache import MemoryCache
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber, parse_dialed_number
from services.persona.sources import SourceUnavailable
from services.webhook_gateway.dedupe import InProcessEventLedger

FLOOD = 100_000
MAX_ENTRIES = 1_000


# 99 000 more entries than fit: what stays, and what passes through at peak, stays within
# one or two footprints of the full structure (dict tables keep some slack after churn);
# an unbounded one would hold ~100x `full`.
async def _memory_profile(push: Callable[[int], Awaitable[None]]) -> tuple[int, int, int]:
    """(bytes held when full, extra bytes held after the flood, peak during the flood above full)."""
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for i in range(MAX_ENTRIES):
            await push(i)
        gc.collect()
        full, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(MAX_ENTRIES, FLOOD):
            await push(i)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return full - start, after - full, peak - full


def _number(i: int) -> str:
    """The i-th distinct Indian mobile number, in E.164 (as PersonaService keys its cache)."""
    return parse_dialed_number(f"+9170{i:08d}", "IN").e164


async def test_persona_cache_holds_at_most_max_entries_and_stops_growing() -> None:
    memory = MemoryCache(MAX_ENTRIES)
    cache = PersonaCache(memory)
    persona = Persona(persona_id="p", personality="You are a persona. " * 20, welcome_message="Hello")
    numbers = [_number(i) for i in range(FLOOD)]
    assert len(set(numbers)) == FLOOD  # every one normalises differently

    async def push(i: int) -> None:
        # Half CRM hits, half "no persona" (404 floods are the cheap attack).
        entry = CacheEntry(answer=persona if i % 2 else None, fetched_at=time.time())
        await cache.set(numbers[i], entry, keep_seconds=86_400)

    full, grown, peak = await _memory_profile(push)

    assert len(memory) == MAX_ENTRIES
    assert await cache.get(numbers[0]) is None  # the oldest were evicted
    assert await cache.get(numbers[-1]) is not None
    assert full > 0
    assert grown < full, (full, grown)
    assert peak < 2 * full, (full, peak)


async def test_event_ledger_memory_stops_growing_at_its_bound() -> None:
    ledger = InProcessEventLedger(ttl_seconds=600, max_entries=MAX_ENTRIES)

    async def push(i: int) -> None:
        await ledger.remember(f"EV_{i:012d}flood")

    full, grown, peak = await _memory_profile(push)

    assert len(ledger) == MAX_ENTRIES
    assert full > 0
    assert grown < full, (full, grown)
    assert peak < 2 * full, (full, peak)


class CrmOfOnePersona:
    """A CRM (the PersonaSourceBackend edge) that knows one number and can go down."""

    cacheable = True

    def __init__(self, number: str, persona: Persona) -> None:
        self.number, self.persona, self.down, self.calls = number, persona, False, 0

    async def fetch(self, number: DialedNumber, deadline: float) -> Persona | None:
        self.calls += 1
        if self.down:
            raise SourceUnavailable("transport", "connection refused")
        return self.persona if number.e164 == self.number else None

    def default_persona(self) -> Persona | None:
        return None

    async def probe(self) -> bool:
        return not self.down

    async def aclose(self) -> None:
        pass


async def test_20k_unknown_numbers_then_a_crm_outage_leave_a_real_number_its_persona() -> None:
    real = _number(999_999)
    persona = Persona(persona_id="real", personality="You answer the real line.")
    crm = CrmOfOnePersona(real, persona)
    cache = PersonaCache(MemoryCache(CacheConfig.max_entries))  # the production LRU size
    lookup = PersonaLookup(
        crm,
        cache,
        PersonaMetrics(CollectorRegistry()),
        default_region="IN",
        policy=CachePolicy(ttl_seconds=CacheConfig.ttl_seconds, max_stale_seconds=CacheConfig.max_stale_seconds),
        breaker=BreakerPolicy(failures=0),  # the fetch itself must fail over to the stale copy here
    )
    assert (await lookup.get(real, allow_default=True, budget_seconds=1.0)).source == PersonaSource.PERSONA_SOURCE_CRM

    for start in range(0, 20_000, 500):  # 20 000 distinct numbers nobody has, 404s all
        await asyncio.gather(
            *(lookup.get(_number(i), allow_default=True, budget_seconds=1.0) for i in range(start, start + 500))
        )
    assert await cache.get(real) is None  # the flood did flush the LRU
    crm.down = True
    calls_before = crm.calls

    reply = await lookup.get(real, allow_default=True, budget_seconds=1.0)

    assert (reply.source, reply.persona.persona_id) == (PersonaSource.PERSONA_SOURCE_STALE_CACHE, "real")
    assert crm.calls == calls_before + 1  # it did ask the CRM, which failed
