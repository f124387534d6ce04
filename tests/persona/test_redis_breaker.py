"""A blackholed Redis (accepts connections, never answers) must not cost every lookup
a socket timeout per Redis operation: after one failure PersonaCache skips Redis for
a cool-down and serves from the in-process cache. Attempts are counted at a TCP
listener standing in for the dead Redis (no timing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.common.redis_client import redis_client
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry
from services.persona.config import CacheConfig
from services.persona.memory_cache import MemoryCache
from services.persona.redis_cache import RedisCache
from services.testing.crm import CrmStandIn
from tests.persona.conftest import ACME, StartPersona, fast_config


class Blackhole:
    """Accepts TCP connections and never answers; counts the connections (= Redis attempts)."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await reader.read()  # until the client gives up and closes

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def blackhole() -> AsyncIterator[Blackhole]:
    hole = Blackhole()
    await hole.start()
    yield hole
    await hole.stop()


async def test_lookups_skip_a_blackholed_redis_after_the_first_failure(
    crm: CrmStandIn, start_persona: StartPersona, blackhole: Blackhole
) -> None:
    numbers = [f"+9186557011{i:02d}" for i in range(5)]
    for number in numbers:
        crm.set_persona(number.removeprefix("+91"), ACME)
    running = await start_persona(fast_config(crm, cache=CacheConfig(redis_url=blackhole.url)))

    first = await running.client.get_persona(numbers[0])
    assert first.source == PersonaSource.PERSONA_SOURCE_CRM
    after_first = blackhole.connections
    assert after_first >= 1  # Redis was tried (and timed out) once ...

    for number in numbers[1:]:  # ... cold lookups of other numbers: CRM, never Redis
        assert (await running.client.get_persona(number)).source == PersonaSource.PERSONA_SOURCE_CRM
    assert (await running.client.get_persona(numbers[0])).source == PersonaSource.PERSONA_SOURCE_CACHE
    assert blackhole.connections == after_first


async def test_redis_is_tried_again_after_the_cool_down(blackhole: Blackhole) -> None:
    now = [100.0]
    errors: list[str] = []
    cache = PersonaCache(
        MemoryCache(),
        RedisCache(redis_client(blackhole.url, timeout_seconds=0.05), key_prefix="x:"),
        count_shared_error=errors.append,
        redis_cooldown_seconds=5.0,
        clock=lambda: now[0],
    )
    try:
        entry = CacheEntry(Persona(persona_id="p", personality="x"), fetched_at=1.0)
        await cache.set("+1", entry, 60)  # Redis fails: the breaker opens
        assert errors == ["set"] and cache.breaker_open()
        tried = blackhole.connections
        assert await cache.get("+1") == entry  # in-process copy, Redis skipped
        await cache.set("+2", entry, 60)
        assert blackhole.connections == tried and errors == ["set"]

        now[0] += 5.0  # cool-down over: the next operation tries Redis again
        assert not cache.breaker_open()
        assert await cache.get("+1") == entry
        assert blackhole.connections == tried + 1 and errors == ["set", "get"]
        assert cache.breaker_open()  # failed again: skipped for another cool-down
    finally:
        await cache.aclose()
