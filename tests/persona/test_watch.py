"""Persona changes reach subscribers: WatchPersonas on real PersonaService servers
against the CRM stand-in, alone (in-process change log) and as two replicas sharing
the real Redis (a Redis stream), plus refresh-ahead on PersonaLookup with a clock of
our own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from friday.persona.v1.persona_pb2 import Persona
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CachePolicy
from services.persona.client import error_reason
from services.persona.config import CacheConfig, WatchConfig
from services.persona.lookup import PersonaLookup
from services.persona.memory_cache import MemoryCache
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.persona.conftest import ACME, REDIS_URL, Running, StartPersona, fast_config

NUMBER = "+918655701159"
NATIONAL = "8655701159"
OTHER = "+14155550100"
GUARD_S = 20  # against a hang only


def acme(welcome: str, **more: Any) -> dict[str, Any]:
    return {**ACME, "welcome_message": welcome, **more}


@asynccontextmanager
async def watching(running: Running, *numbers: str, resume_token: str = "") -> AsyncIterator[Any]:
    channel = grpc.aio.insecure_channel(running.server.address)
    stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
    call = stub.WatchPersonas(
        persona_service_pb2.WatchPersonasRequest(dialed_numbers=list(numbers), resume_token=resume_token)
    )
    try:
        yield call
    finally:
        call.cancel()
        await channel.close()


async def next_change(call: Any) -> persona_service_pb2.WatchPersonasResponse:
    """The next change event (keep-alives skipped)."""
    while True:
        event = await asyncio.wait_for(call.read(), GUARD_S)
        assert event is not grpc.aio.EOF
        if not event.HasField("keep_alive"):
            return event


async def notify(running: Running, *numbers: str) -> persona_service_pb2.NotifyPersonaChangesResponse:
    channel = grpc.aio.insecure_channel(running.server.address)
    try:
        stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        return await stub.NotifyPersonaChanges(
            persona_service_pb2.NotifyPersonaChangesRequest(dialed_numbers=list(numbers)), timeout=5
        )
    finally:
        await channel.close()


async def until_watching(running: Running, count: int = 1) -> None:
    """Waits until the replica counts `count` open watches (its persona_watchers gauge):
    the sync point between a subscriber connecting and a change being made."""
    assert running.server.metrics_port is not None, "start the server with metrics=True"
    for _ in range(2000):
        _, body = await http_get(running.server.metrics_port)
        if sample(body, "persona_watchers") >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the subscriber never registered")


async def test_a_crm_change_reaches_a_subscriber_with_both_versions(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(NATIONAL, acme("Hello, version one."))
    running = await start_persona(fast_config(crm), metrics=True)
    first = await running.client.get_persona(NUMBER)
    async with watching(running, NUMBER) as call:
        await until_watching(running)
        crm.set_persona(NATIONAL, acme("Hello, version two."))
        reply = await notify(running, "08655701159", OTHER)
        assert [r.changed for r in reply.refreshed] == [True, True]  # OTHER: unknown before, 404 now
        event = await next_change(call)
    change = event.change
    assert change.normalized_number == NUMBER and change.persona.welcome_message == "Hello, version two."
    assert change.previous_version == first.persona.version and change.version != first.persona.version
    assert event.resume_token and change.changed_at.seconds > 0
    # The cache holds the new version at once: no second CRM request for the next call.
    requests = crm.requests_for(NATIONAL)
    assert (await running.client.get_persona(NUMBER)).persona.welcome_message == "Hello, version two."
    assert crm.requests_for(NATIONAL) == requests


async def test_an_unchanged_persona_is_not_a_change(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, acme("Same."))
    running = await start_persona(fast_config(crm), metrics=True)
    await running.client.get_persona(NUMBER)
    reply = await notify(running, NUMBER)
    assert [r.changed for r in reply.refreshed] == [False]


async def test_invalidate_refetches_at_once_and_publishes(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, acme("Before."))
    running = await start_persona(fast_config(crm), metrics=True)
    await running.client.get_persona(NUMBER)
    async with watching(running) as call:  # every number
        await until_watching(running)
        crm.set_persona(NATIONAL, acme("After.", version="v2"))
        done = await running.client.invalidate_persona(NUMBER)
        assert done.removed and done.refetched and done.version == "v2"
        event = await next_change(call)
    assert event.change.version == "v2" and event.change.persona.welcome_message == "After."
    crm.remove_persona(NATIONAL)
    async with watching(running, NUMBER) as call:
        await until_watching(running)
        await notify(running, NUMBER)
        gone = await next_change(call)
    assert gone.change.removed and not gone.change.HasField("persona") and gone.change.previous_version == "v2"


async def test_resume_loses_nothing_and_an_unknown_token_resyncs(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona(NATIONAL, acme("v1"))
    running = await start_persona(fast_config(crm), metrics=True)
    await running.client.get_persona(NUMBER)
    async with watching(running, NUMBER) as call:
        await until_watching(running)
        crm.set_persona(NATIONAL, acme("v2"))
        await notify(running, NUMBER)
        token = (await next_change(call)).resume_token
    # Disconnected: two changes happen meanwhile.
    for text in ("v3", "v4"):
        crm.set_persona(NATIONAL, acme(text))
        await notify(running, NUMBER)
    async with watching(running, NUMBER, resume_token=token) as call:
        missed = [await next_change(call), await next_change(call)]
    assert [e.change.persona.welcome_message for e in missed] == ["v3", "v4"]
    async with watching(running, NUMBER, resume_token="0a0a0a0a.1") as call:
        assert (await next_change(call)).HasField("resync")


async def test_keep_alives_arrive_while_nothing_changes(crm: CrmStandIn, start_persona: StartPersona) -> None:
    config = replace(fast_config(crm), watch=WatchConfig(keepalive_seconds=0.05))
    running = await start_persona(config, metrics=True)
    async with watching(running, NUMBER) as call:
        event = await asyncio.wait_for(call.read(), GUARD_S)
    assert event.HasField("keep_alive") and event.resume_token


async def test_a_slow_subscriber_is_cut_off_without_slowing_the_others(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    crm.set_persona(NATIONAL, acme("v0"))
    config = replace(fast_config(crm), watch=WatchConfig(buffer=4, keepalive_seconds=600))
    running = await start_persona(config, metrics=True)
    await running.client.get_persona(NUMBER)
    # ~200 KB a change, 80 changes: far more than HTTP/2 flow control and grpc's transport
    # buffers hold for a reader that reads nothing, so the slow one's own buffer fills.
    long_prompt = "You are Maya. " * 14_000
    changes = 80
    async with watching(running, NUMBER) as slow, watching(running, NUMBER) as fast:
        await until_watching(running, 2)
        received = []
        for i in range(changes):
            crm.set_persona(NATIONAL, acme(f"v{i + 1}", personality=long_prompt))
            await notify(running, NUMBER)
            received.append((await next_change(fast)).change.persona.welcome_message)
        assert received == [f"v{i + 1}" for i in range(changes)]
        assert running.server.metrics_port is not None
        _, body = await http_get(running.server.metrics_port)
        assert sample(body, "persona_watchers_dropped_total") == 1
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            while True:
                event = await asyncio.wait_for(slow.read(), GUARD_S)
                assert event is not grpc.aio.EOF
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and error_reason(cut.value) == "WATCH_TOO_SLOW"


async def test_watch_and_notify_refuse_bad_numbers(crm: CrmStandIn, start_persona: StartPersona) -> None:
    running = await start_persona(fast_config(crm), metrics=True)
    async with watching(running, "not a number") as call:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await call.read()
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as many:
        await notify(running, *[f"+1415555{n:04d}" for n in range(101)])
    assert many.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error_reason(many.value) == "TOO_MANY_NUMBERS"


async def test_a_change_seen_by_one_replica_reaches_the_subscribers_of_both(
    crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str
) -> None:
    crm.set_persona(NATIONAL, acme("shared v1"))
    shared = CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    a = await start_persona(fast_config(crm, cache=shared), metrics=True)
    b = await start_persona(fast_config(crm, cache=shared), metrics=True)
    await a.client.get_persona(NUMBER)
    async with watching(a, NUMBER) as on_a, watching(b, NUMBER) as on_b:
        await until_watching(a)
        await until_watching(b)
        crm.set_persona(NATIONAL, acme("shared v2"))
        await notify(a, NUMBER)
        seen = [await next_change(on_a), await next_change(on_b)]
        assert [e.change.persona.welcome_message for e in seen] == ["shared v2", "shared v2"]
        assert seen[0].resume_token == seen[1].resume_token  # one stream entry, one token everywhere
        # The shared cache was replaced: replica B answers v2 without asking the CRM.
        requests = crm.requests_for(NATIONAL)
        assert (await b.client.get_persona(NUMBER)).persona.welcome_message == "shared v2"
        assert crm.requests_for(NATIONAL) == requests
        token = seen[1].resume_token
    # Resume on the other replica with a token from the first.
    crm.set_persona(NATIONAL, acme("shared v3"))
    await notify(b, NUMBER)
    async with watching(a, NUMBER, resume_token=token) as resumed:
        assert (await next_change(resumed)).change.persona.welcome_message == "shared v3"


class CountingSource:
    cacheable = True

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, number: DialedNumber, deadline: float) -> Persona:
        self.calls += 1
        return Persona(persona_id="acme", personality="You are Maya.", version=f"v{self.calls}")

    def default_persona(self) -> Persona | None:
        return None

    async def probe(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


async def test_a_hot_entry_is_refreshed_ahead_of_its_ttl() -> None:
    now = [1000.0]
    source = CountingSource()
    lookup = PersonaLookup(
        source,  # type: ignore[arg-type]
        PersonaCache(MemoryCache()),
        PersonaMetrics(CollectorRegistry()),
        default_region="IN",
        policy=CachePolicy(ttl_seconds=100.0, refresh_ahead_fraction=0.8),
        clock=lambda: now[0],
    )
    assert (await lookup.get(NUMBER, allow_default=False, budget_seconds=2)).persona.version == "v1"
    now[0] += 79.0  # within 80 % of the TTL: a plain hit
    await lookup.get(NUMBER, allow_default=False, budget_seconds=2)
    await lookup.drain()
    assert source.calls == 1
    now[0] += 2.0  # 81 s into a 100 s TTL: still fresh, and refreshed in the background
    hit = await lookup.get(NUMBER, allow_default=False, budget_seconds=2)
    assert hit.persona.version == "v1"
    await lookup.drain()
    assert source.calls == 2
    assert (await lookup.get(NUMBER, allow_default=False, budget_seconds=2)).persona.version == "v2"
    await lookup.aclose()


async def test_friday_persona_watch_prints_a_change_that_notify_triggers(
    crm: CrmStandIn, start_persona: StartPersona
) -> None:
    friday = str(Path(sys.executable).with_name("friday"))
    crm.set_persona(NATIONAL, acme("cli v1"))
    running = await start_persona(fast_config(crm), metrics=True)
    await running.client.get_persona(NUMBER)
    watch = await asyncio.create_subprocess_exec(
        friday, "persona", "watch", NUMBER, "--target", running.server.address,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        await until_watching(running)
        crm.set_persona(NATIONAL, acme("cli v2", version="cli-2"))
        notify = await asyncio.create_subprocess_exec(
            friday, "persona", "notify", "08655701159", "--target", running.server.address,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(notify.communicate(), GUARD_S)
        assert notify.returncode == 0, err.decode()
        assert '"changed": true' in out.decode() and '"version": "cli-2"' in out.decode()
        assert watch.stdout is not None
        line = (await asyncio.wait_for(watch.stdout.readline(), GUARD_S)).decode()
        assert f"{NUMBER}  sha256:" in line and "-> cli-2 persona acme" in line
    finally:
        watch.terminate()
        await watch.wait()
