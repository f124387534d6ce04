"""PersonaLookup on its own: a real in-process cache and metrics, and small sources
that implement the PersonaSourceBackend interface the way a buggy or slow backend would."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry, CachePolicy
from services.persona.errors import CrmUnavailableError
from services.persona.lookup import PersonaLookup
from services.persona.memory_cache import MemoryCache
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber

NUMBER = "+918655701159"
ACME = Persona(persona_id="acme", personality="You are Maya.")


class ExplodingSource:
    """A source with a bug: raises something that is not SourceUnavailable."""

    cacheable = True

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, number: DialedNumber, deadline: float) -> Persona | None:
        self.calls += 1
        raise KeyError("a bug in the source")

    def default_persona(self) -> Persona | None:
        return None

    async def probe(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def _lookup(
    source: object, health: list[bool], registry: CollectorRegistry | None = None, **kwargs: object
) -> PersonaLookup:
    async def report(healthy: bool) -> None:
        health.append(healthy)

    return PersonaLookup(
        source,  # type: ignore[arg-type]
        PersonaCache(MemoryCache()),
        PersonaMetrics(registry or CollectorRegistry()),
        default_region="IN",
        policy=CachePolicy(ttl_seconds=0.0),
        report_source_health=report,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_an_unforeseen_source_error_serves_stale_then_default_then_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, health, registry = ExplodingSource(), [], CollectorRegistry()
    lookup = _lookup(source, health, registry)
    await lookup.cache.set(NUMBER, CacheEntry(ACME, fetched_at=time.time() - 5), 3600)

    stale = await lookup.get(NUMBER, allow_default=False, budget_seconds=1.0)
    assert stale.source == PersonaSource.PERSONA_SOURCE_STALE_CACHE and stale.persona == ACME
    await lookup.drain()  # the background refresh that met the bug
    assert health == [False]
    assert any("KeyError" in (r.exc_text or "") for r in caplog.records)  # the traceback is logged

    other = "+919876543210"
    default = await lookup.get(other, allow_default=True, budget_seconds=1.0)
    assert default.source == PersonaSource.PERSONA_SOURCE_DEFAULT
    with pytest.raises(CrmUnavailableError):
        await lookup.get(other, allow_default=False, budget_seconds=1.0)
    assert source.calls == 3
    assert registry.get_sample_value("persona_crm_errors_total", {"kind": "error"}) == 3


async def test_nothing_but_domain_errors_escape(caplog: pytest.LogCaptureFixture) -> None:
    # Same contract under concurrency: every waiter of the shared fetch gets a domain answer.
    lookup = _lookup(ExplodingSource(), [])
    results = await asyncio.gather(
        *(lookup.get(NUMBER, allow_default=True, budget_seconds=1.0) for _ in range(5)), return_exceptions=True
    )
    assert all(not isinstance(r, BaseException) for r in results)
    assert {r.source for r in results} == {PersonaSource.PERSONA_SOURCE_DEFAULT}  # type: ignore[union-attr]
