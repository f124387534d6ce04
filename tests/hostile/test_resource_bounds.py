"""A flood of distinct numbers or event ids cannot grow memory without limit: the
persona cache (LRU + TTL) and the gateway's event ledger (TTL + size bound) stay at
their configured size, and the memory they hold stops growing once they are full.

(tests/webhook_gateway/test_dedupe.py checks the ledger's entry count; this adds the
memory side.) Memory is measured with tracemalloc, relative to the structure's own
footprint when full, so the bound does not depend on the machine.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable

from friday.persona.v1.persona_pb2 import Persona
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry
from services.persona.memory_cache import MemoryCache
from services.persona.numbers import parse_dialed_number
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
        entry = CacheEntry(persona=persona if i % 2 else None, fetched_at=time.time())
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
