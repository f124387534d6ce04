"""The whole call path in one event loop, on real sockets: CRM stand-in →
PersonaService, LiveKit stand-in → DispatcherService, the gateway in front, and
(when a fault needs it) a Redis of our own shared by all three services.

Every part can be stopped and started again on the same port, which is what the
faults do. The settings are the services' production defaults except where a
fault needs a knob turned; those exceptions are listed in `MeshOptions`.
"""

from __future__ import annotations

import gc
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from aiohttp import web

from services.common import event_loop
from services.dispatcher.config import ClaimConfig, DispatcherConfig, LiveKitConfig
from services.dispatcher.server import build_server as build_dispatcher
from services.grpc_runtime import GrpcServer, ServerConfig
from services.persona.config import PersonaConfig
from services.persona.server import build_server as build_persona
from services.testing.crm import CrmStandIn
from services.testing.livekit_api import LiveKitStandIn
from services.webhook_gateway.config import GatewayConfig
from services.webhook_gateway.server import start as start_gateway

from .options import MeshOptions
from .redis_process import RedisProcess, free_port

WEBHOOK_KEY = "APIchaoswebhook"
WEBHOOK_SECRET = "chaos-webhook-secret-at-least-32-bytes-long"
WEBHOOK_PATH = "/livekit-webhook"


class FlappingCrm(CrmStandIn):
    """The CRM stand-in plus one knob it lacks: fail a random share of requests."""

    def __init__(self, *, seed: int = 0, port: int = 0) -> None:
        super().__init__(port=port)
        self.flap_probability = 0.0
        self._random = random.Random(seed)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.flap_probability and self._random.random() < self.flap_probability:
            self.total_requests += 1
            return web.json_response({"error": "internal", "message": "flapping"}, status=500)
        return await super()._handle(request)


class ChaosMesh:
    def __init__(self, options: MeshOptions) -> None:
        self.options = options
        # A fixed port, so the CRM can come back where PERSONA_API_BASE points.
        self.crm = FlappingCrm(seed=options.seed, port=free_port())
        self.livekit = LiveKitStandIn(api_key="APIchaoslivekit", api_secret="chaos-livekit-secret-0123456789abcdef")
        self.redis: RedisProcess | None = RedisProcess() if options.with_redis else None
        self.persona: GrpcServer | None = None
        self.dispatcher: GrpcServer | None = None
        self.gateway_url = ""
        self.http: httpx.AsyncClient | None = None
        self._prefix = f"chaos:{uuid.uuid4().hex[:12]}:"
        self._persona_port = 0
        self._dispatcher_port = 0

    @property
    def webhook_url(self) -> str:
        return self.gateway_url + WEBHOOK_PATH

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis is not None else None

    def persona_config(self) -> PersonaConfig:
        return PersonaConfig(
            api_base=self.crm.base_url,
            cache_ttl_seconds=self.options.persona_cache_ttl_seconds,
            crm_probe_interval_seconds=0,
            redis_url=self.redis_url,
            redis_key_prefix=self._prefix + "persona:",
        )

    def dispatcher_config(self) -> DispatcherConfig:
        return DispatcherConfig(
            livekit=LiveKitConfig(self.livekit.url, self.livekit.api_key, self.livekit.api_secret),
            claims=ClaimConfig(redis_url=self.redis_url, key_prefix=self._prefix + "claim:"),
        )

    async def start_persona(self) -> None:
        self.persona = build_persona(self.persona_config(), ServerConfig(host="127.0.0.1", port=self._persona_port))
        await self.persona.start()
        self._persona_port = self.persona.port

    async def stop_persona(self, grace: float = 0.0) -> None:
        if self.persona is not None:
            await self.persona.stop(grace=grace)
            self.persona = None

    async def start_dispatcher(self) -> None:
        config = ServerConfig(host="127.0.0.1", port=self._dispatcher_port)
        self.dispatcher = build_dispatcher(self.dispatcher_config(), config)
        await self.dispatcher.start()
        self._dispatcher_port = self.dispatcher.port

    async def stop_dispatcher(self, grace: float = 0.0) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop(grace=grace)
            self.dispatcher = None

    async def stop_crm(self) -> None:
        await self.crm.stop()

    async def start_crm(self) -> None:
        await self.crm.start()

    def gateway_config(self) -> GatewayConfig:
        return GatewayConfig(
            host="127.0.0.1",
            port=0,
            webhook_api_key=WEBHOOK_KEY,
            webhook_api_secret=WEBHOOK_SECRET,
            persona_target=f"127.0.0.1:{self._persona_port}",
            dispatcher_target=f"127.0.0.1:{self._dispatcher_port}",
            redis_url=self.redis_url,
            redis_prefix=self._prefix + "gateway:",
        )


@asynccontextmanager
async def chaos_mesh(options: MeshOptions | None = None) -> AsyncIterator[ChaosMesh]:
    options = options or MeshOptions()
    mesh = ChaosMesh(options)
    async with AsyncExitStack() as stack:
        # Three services share this process, which may be a big one (a test run that loaded
        # livekit-agents: a full collection there took ~145 ms, longer than PersonaService's
        # 100 ms answer margin). Each real service freezes its start-up heap
        # (services/common/event_loop.py); do the same for the duration of the run.
        event_loop.freeze_startup_heap()
        stack.callback(gc.unfreeze)
        if mesh.redis is not None:
            await mesh.redis.start()
            stack.push_async_callback(mesh.redis.kill)
        await mesh.crm.start()
        stack.push_async_callback(mesh.crm.stop)
        await mesh.livekit.start()
        stack.push_async_callback(mesh.livekit.stop)
        mesh.livekit.set_latency(options.livekit_latency_seconds)
        await mesh.start_persona()
        stack.push_async_callback(mesh.stop_persona)
        await mesh.start_dispatcher()
        stack.push_async_callback(mesh.stop_dispatcher)
        mesh.gateway_url = await stack.enter_async_context(start_gateway(mesh.gateway_config()))
        mesh.http = await stack.enter_async_context(
            httpx.AsyncClient(limits=httpx.Limits(max_connections=400, max_keepalive_connections=100))
        )
        yield mesh
