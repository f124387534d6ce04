"""PersonaService on a real port 0 against the CRM stand-in (services/testing/crm.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as redis

from services.grpc_runtime import GrpcServer, ServerConfig
from services.persona.admission import NewNumberLimits
from services.persona.client import PersonaClient
from services.persona.config import CacheConfig, CrmConfig, PersonaConfig
from services.persona.server import build_server
from services.testing.crm import CrmStandIn

REDIS_URL = "redis://127.0.0.1:6379/0"

ACME = {
    "persona_id": "acme",
    "persona_name": "Maya from Acme",
    "personality": "You are Maya.",
    "conversationStructure": "Greet, help, close.",
    "welcome_message": "Hi, Acme here.",
    "closing_message": "Bye!",
    "crm_owner": "sales-team",
}


def fast_config(
    standin: CrmStandIn,
    *,
    cache: CacheConfig | None = None,
    new_numbers: NewNumberLimits | None = None,
    **crm: Any,
) -> PersonaConfig:
    """CRM-backed config with quick backoff and no background probe; keyword arguments
    override CrmConfig fields."""
    fast = CrmConfig(
        api_base=standin.base_url, backoff_initial_seconds=0.01, backoff_max_seconds=0.05, probe_interval_seconds=0
    )
    return PersonaConfig(
        crm=replace(fast, **crm), cache=cache or CacheConfig(), new_numbers=new_numbers or NewNumberLimits()
    )


class Running:
    def __init__(self, server: GrpcServer, client: PersonaClient) -> None:
        self.server = server
        self.client = client


StartPersona = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_persona() -> AsyncIterator[StartPersona]:
    """`await start_persona(config, metrics=True)` → a started server + PersonaClient; all stopped at teardown.
    The client dials `server.address`; `host="[::]"` listens on IPv4 and IPv6 (two peers on one machine)."""
    async with AsyncExitStack() as stack:

        async def start(
            config: PersonaConfig, *, metrics: bool = False, retry: Any = None, host: str = "127.0.0.1"
        ) -> Running:
            server_config = ServerConfig(host=host, port=0, metrics_port=0 if metrics else None)
            server = build_server(config, server_config)
            await server.start()
            stack.push_async_callback(server.stop, 0)
            client = PersonaClient(server.address, timeout=5, retry=retry)
            stack.push_async_callback(client.close)
            return Running(server, client)

        yield start


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique key prefix on the real Redis; every key under it is deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the machine runs Redis
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"test:persona:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


REFRESH_OUTCOMES = ("ok", "not_found", "failed", "skipped")


async def background_refreshes(running: Running, count: int) -> dict[str, float]:
    """Waits until `count` background refreshes (stale-while-revalidate) have ended and
    returns them by outcome: a test's sync point with work it does not wait for."""
    from tests.grpc_runtime.test_metrics_errors import http_get, sample

    assert running.server.metrics_port is not None, "start the server with metrics=True"
    for _ in range(1000):
        _, body = await http_get(running.server.metrics_port)
        outcomes = {o: sample(body, "persona_background_refreshes_total", outcome=o) for o in REFRESH_OUTCOMES}
        if sum(outcomes.values()) >= count:
            return outcomes
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} background refreshes ended")


async def until(condition: Callable[[], bool], poll_seconds: float = 0.005) -> None:
    """Waits for a condition in another task or process (a sync point, not a timing check)."""
    for _ in range(int(5 / poll_seconds)):
        if condition():
            return
        await asyncio.sleep(poll_seconds)
    raise AssertionError("condition never became true")
