"""The worker built from the environment registers for explicit dispatch under
the configured agent name — checked on the wire, against a stand-in for
LiveKit's agent WebSocket endpoint (`/agent`, first message RegisterWorkerRequest)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web
from livekit.protocol import agent as agent_proto

from agent.config import AgentConfig
from agent.worker import build_server
from services.testing.livekit_api import LiveKitStandIn

HANG_GUARD_S = 60
API_KEY = "test-key"
API_SECRET = "a-test-secret-long-enough-for-hs256-checks"


class AgentEndpointStandIn:
    """Accepts one worker connection and answers its registration like LiveKit does."""

    def __init__(self) -> None:
        self.registrations: asyncio.Queue[agent_proto.RegisterWorkerRequest] = asyncio.Queue()
        self.authorizations: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _agent(self, request: web.Request) -> web.WebSocketResponse:
        self.authorizations.append(request.headers.get("Authorization", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            worker_msg = agent_proto.WorkerMessage()
            worker_msg.ParseFromString(msg.data)
            if worker_msg.HasField("register"):
                await self.registrations.put(worker_msg.register)
                reply = agent_proto.ServerMessage(register=agent_proto.RegisterWorkerResponse(worker_id="AW_test"))
                await ws.send_bytes(reply.SerializeToString())
        return ws

    async def __aenter__(self) -> AgentEndpointStandIn:
        app = web.Application()
        app.router.add_get("/agent", self._agent)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def livekit_agent_endpoint() -> AsyncIterator[AgentEndpointStandIn]:
    async with AgentEndpointStandIn() as standin:
        yield standin


@pytest.mark.parametrize(
    ("env_name", "expected"), [(None, "friday-ai-agent"), ("acme-dental-agent", "acme-dental-agent")]
)
async def test_worker_registers_with_the_configured_agent_name(
    livekit_agent_endpoint: AgentEndpointStandIn,
    monkeypatch: pytest.MonkeyPatch,
    env_name: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", livekit_agent_endpoint.url)
    monkeypatch.setenv("LIVEKIT_API_KEY", API_KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", API_SECRET)
    monkeypatch.delenv("LIVEKIT_AGENT_NAME", raising=False)
    monkeypatch.delenv("LIVEKIT_AGENT_NAME_OVERRIDE", raising=False)
    if env_name is None:
        monkeypatch.delenv("AGENT_TO_DISPATCH", raising=False)
    else:
        monkeypatch.setenv("AGENT_TO_DISPATCH", env_name)

    server = build_server(AgentConfig.from_env())
    run = asyncio.create_task(server.run(devmode=True))
    try:
        registration = await asyncio.wait_for(livekit_agent_endpoint.registrations.get(), HANG_GUARD_S)
    finally:
        await server.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run, HANG_GUARD_S)

    # A non-empty agent_name is what makes LiveKit dispatch this worker explicitly only.
    assert registration.agent_name == expected
    assert registration.type == agent_proto.JobType.JT_ROOM
    assert livekit_agent_endpoint.authorizations[0].startswith("Bearer ")


async def test_the_worker_registers_with_the_livekit_standin_and_is_in_its_registry(
    livekit: LiveKitStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same worker against the LiveKit stand-in's own `/agent` (services/testing/agent_protocol.py):
    its token passes the stand-in's check (the `agent` grant) and it is a registered worker."""
    monkeypatch.setenv("LIVEKIT_URL", livekit.url)
    monkeypatch.setenv("LIVEKIT_API_KEY", livekit.api_key)
    monkeypatch.setenv("LIVEKIT_API_SECRET", livekit.api_secret)
    for name in ("AGENT_TO_DISPATCH", "LIVEKIT_AGENT_NAME", "LIVEKIT_AGENT_NAME_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)

    server = build_server(AgentConfig.from_env())
    registered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server.on("worker_registered", lambda worker_id, info: registered.done() or registered.set_result(worker_id))
    run = asyncio.create_task(server.run(devmode=True))
    try:
        worker_id = await asyncio.wait_for(registered, HANG_GUARD_S)
        assert [(w.id, w.agent_name) for w in livekit.workers.workers()] == [(worker_id, "friday-ai-agent")]
    finally:
        await server.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run, HANG_GUARD_S)
    await asyncio.wait_for(_until_no_workers(livekit), HANG_GUARD_S)


async def _until_no_workers(livekit: LiveKitStandIn) -> None:
    while livekit.workers.workers():  # noqa: ASYNC110 - the registry has no event for it
        await asyncio.sleep(0.05)
