"""Fixtures for DispatcherService tests: real gRPC servers on port 0 in front of the
LiveKit stand-in, optionally sharing the machine's real Redis under a unique prefix.

The stand-in holds only the rooms it was given: a DispatchAgent request is for a call
whose caller is already in the room, so each test creates its rooms first
(`livekit.create_room`); for a room LiveKit does not hold, ListDispatch answers nothing
for 15 s, as livekit-server does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

import pytest
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from services.dispatcher.client import DispatcherClient
from services.dispatcher.config import ClaimConfig, DispatcherConfig, LiveKitConfig, RetryConfig
from services.dispatcher.server import build_server
from services.grpc_runtime import ClientTLSConfig, GrpcServer, ServerConfig
from services.testing.livekit_api import LiveKitStandIn

REDIS_URL = "redis://127.0.0.1:6379/0"
AGENT = "friday-ai-agent"

# Fast retries so fault tests spend milliseconds, not seconds, between attempts.
FAST_RETRY = RetryConfig(max_attempts=6, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=1.0)


def config_for(lk: LiveKitStandIn, *, redis_prefix: str | None = None, **overrides: object) -> DispatcherConfig:
    claims = ClaimConfig(
        redis_url=REDIS_URL if redis_prefix else None,
        key_prefix=redis_prefix or "unused:",
        settle_seconds=5.0,
        poll_interval=0.02,
    )
    config = DispatcherConfig(livekit=LiveKitConfig(lk.url, lk.api_key, lk.api_secret), retry=FAST_RETRY, claims=claims)
    return replace(config, **overrides)  # type: ignore[arg-type]


def job_metadata(room: str, sip_call_id: str = "SCL_test", persona_name: str = "Asha") -> AgentJobMetadata:
    metadata = AgentJobMetadata(schema_version=1, trace_id="EV_test")
    metadata.persona.display_name = persona_name
    metadata.persona.personality = "You are Asha, the front desk of a dental clinic."
    metadata.call.room = room
    metadata.call.sip_call_id = sip_call_id
    metadata.call.dialed_number = "+911234567890"
    return metadata


@dataclass
class RunningDispatcher:
    server: GrpcServer
    client: DispatcherClient

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value on this server's registry (0 when absent)."""
        return self.server.registry.get_sample_value(name, labels or {}) or 0.0


DispatcherFactory = Callable[..., "AsyncIterator[RunningDispatcher]"]


@pytest.fixture
async def livekit() -> AsyncIterator[LiveKitStandIn]:
    """The LiveKit stand-in as a deployment has it: a worker registered under AGENT
    (tests of a missing or failing worker change it through `livekit.workers`)."""
    # A room LiveKit does not have answers in 1 s rather than the real 15 s (gone-room tests).
    async with LiveKitStandIn(missing_room_delay_seconds=1.0) as standin:
        standin.workers.register(AGENT)
        yield standin


@pytest.fixture
async def start_dispatcher() -> AsyncIterator[Callable[..., object]]:
    """`await start_dispatcher(config, server_config=..., token=..., tls=...)` → RunningDispatcher;
    everything started is stopped at teardown."""
    async with AsyncExitStack() as stack:

        async def start(
            config: DispatcherConfig,
            *,
            server_config: ServerConfig | None = None,
            token: str | None = None,
            tls: ClientTLSConfig | None = None,
        ) -> RunningDispatcher:
            server = build_server(config, server_config or ServerConfig(host="127.0.0.1", port=0))
            await stack.enter_async_context(server)
            client = DispatcherClient(server.address, token=token, tls=tls, default_timeout=5.0)
            stack.push_async_callback(client.aclose)
            return RunningDispatcher(server, client)

        yield start


@pytest.fixture
async def dispatcher(livekit: LiveKitStandIn, start_dispatcher: Callable[..., object]) -> RunningDispatcher:
    """One dispatcher, in-memory claims, in front of the `livekit` stand-in."""
    return await start_dispatcher(config_for(livekit))  # type: ignore[misc]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique key prefix in the machine's Redis; every key under it is deleted afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"friday:test:dispatcher:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()
