"""The whole call path in one event loop, on real sockets: CRM stand-in →
PersonaService, LiveKit stand-in → DispatcherService, the gateway in front,
(with `MeshOptions.with_redis`) a Redis of its own shared by all three services, and
(with `MeshOptions.call_history`) CallHistoryService, which the gateway reports calls to.

    async with Mesh(MeshOptions(gateway_budget_seconds=2.0)) as mesh:
        mesh.crm.set_persona("8655701159", {...})
        response = await mesh.deliver(sip_participant_joined(room="call-1", dialed_number="+918655701159"))
        mesh.livekit.dispatches("call-1")

LiveKit is the faithful stand-in: it holds only the rooms callers are in, and gives a
dispatch a job only when a worker is registered for its agent name. So the mesh registers
a worker for the agent name the gateway dispatches (`MeshOptions.livekit_worker`, None for
none), and `deliver()` puts the event's room into LiveKit first, as LiveKit holds the room
before it sends a participant's join. Bodies sent with `post()` need
`mesh.livekit.create_room(room)` for the same reason.

Every part can be stopped and started again on the same port, which is what the
chaos faults and the restart tests do. The settings are the services' production
defaults except the knobs in `MeshOptions` and what wiring the parts together takes
(addresses, the webhook key pair, Redis key prefixes, no CRM probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, Self

import httpx
from livekit.protocol.webhook import WebhookEvent

from services.calls.config import CallsConfig, StoreConfig
from services.calls.server import build_server as build_calls
from services.common import event_loop
from services.dispatcher.config import CallHistoryConfig, ClaimConfig, DispatcherConfig, LiveKitConfig
from services.dispatcher.server import build_server as build_dispatcher
from services.persona.config import CacheConfig, CrmConfig, PersonaConfig
from services.persona.server import build_server as build_persona
from services.webhook_gateway.call_reporter import CallReportingConfig
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from services.webhook_gateway.server import GatewayServer
from services.webhook_gateway.server import build_server as build_gateway

from . import livekit_webhooks
from .calls_process import CallsProcess
from .crm import CrmStandIn
from .dispatcher_process import DispatcherProcess
from .livekit_api import LiveKitStandIn
from .mesh_options import MeshOptions
from .mesh_service import MeshService
from .redis_process import RedisProcess

HOST = "127.0.0.1"
# The key pair LiveKit signs the mesh's webhooks with.
WEBHOOK_KEY = "APIwebhookkey"
WEBHOOK_SECRET = "webhook-secret-that-is-at-least-32-bytes-long"
WEBHOOK_PATH = "/livekit-webhook"
# Events LiveKit sends only about a room it holds.
ROOM_EVENTS = frozenset({"room_started", "participant_joined"})


async def _cancelled(task: asyncio.Future[None]) -> None:
    """Leaving the mesh while a part is still starting: stop the start-up."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _given(**settings: object) -> dict[str, Any]:
    """The settings an option sets; the rest keep the service's default."""
    return {name: value for name, value in settings.items() if value is not None}


class Mesh:
    """One use: ``async with Mesh(options) as mesh`` starts every part, leaving stops them all."""

    def __init__(self, options: MeshOptions | None = None) -> None:
        self.options = options or MeshOptions()
        self.crm = CrmStandIn(seed=self.options.seed)
        self.livekit = LiveKitStandIn(
            **_given(missing_room_delay_seconds=self.options.livekit_missing_room_delay_seconds)
        )
        self.redis: RedisProcess | None = RedisProcess() if self.options.with_redis else None
        # Each `.server` in this process, or `.process` (as `MeshOptions` says), and its `.port`.
        self.persona = MeshService()
        self.dispatcher = MeshService()
        self.calls = MeshService()  # CallHistoryService (`MeshOptions.call_history`)
        self.gateway_url = ""
        # Room for the chaos runs: a hundred calls, each possibly delivered twice at once.
        self.http = httpx.AsyncClient(
            timeout=10, limits=httpx.Limits(max_connections=400, max_keepalive_connections=100)
        )
        self._prefix = f"mesh:{uuid.uuid4().hex[:12]}:"
        # 0 until the first start; then the gateway comes back on the port it got.
        self._gateway_port = 0
        self._calls_dir: tempfile.TemporaryDirectory[str] | None = None
        self._gateway: GatewayServer | None = None
        self._stack = AsyncExitStack()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._start_all()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start_all(self) -> None:
        stack = self._stack
        # Three services share this process, which may be a big one (a test run that loaded
        # livekit-agents: a full collection there took ~145 ms, longer than PersonaService's
        # 100 ms answer margin). Each real service freezes its start-up heap
        # (services/common/event_loop.py); do the same while the mesh runs.
        event_loop.freeze_startup_heap()
        stack.callback(gc.unfreeze)
        calls_started: asyncio.Task[None] | None = None
        if self.options.call_history:
            # A file, not :memory:, so that a test can reach the database behind the service
            # (calls_database_path) as an operator's tools would. Started first: as a process it
            # takes a while to import and migrate, while the rest of the mesh starts.
            self._calls_dir = tempfile.TemporaryDirectory(prefix="mesh-calls-")
            stack.callback(self._calls_dir.cleanup)
            stack.push_async_callback(self.stop_calls)
            calls_started = asyncio.ensure_future(self.start_calls())
            stack.push_async_callback(_cancelled, calls_started)
        if self.redis is not None:
            await self.redis.start()
            stack.push_async_callback(self.redis.kill)
        await self.crm.start()
        stack.push_async_callback(self.crm.stop)
        await self.livekit.start()
        stack.push_async_callback(self.livekit.stop)
        self.livekit.set_latency(self.options.livekit_latency_seconds)
        if self.options.livekit_worker is not None:
            self.livekit.workers.register(
                self.gateway_config.agent_name,
                accept_delay=self.options.livekit_worker_accept_delay_seconds,
                outcome=self.options.livekit_worker,
            )
        await self.start_persona()
        stack.push_async_callback(self.stop_persona)
        if calls_started is not None and not self.options.calls_process:
            await calls_started  # in this process its port is known once it serves
        # The dispatcher and the gateway need only the service's address: a process's is
        # known before it serves.
        await self.start_dispatcher()
        stack.push_async_callback(self.stop_dispatcher)
        await self.start_gateway()
        stack.push_async_callback(self.stop_gateway)
        if calls_started is not None:
            await calls_started
        await stack.enter_async_context(self.http)

    async def start_crm(self) -> None:
        await self.crm.start()

    async def stop_crm(self) -> None:
        await self.crm.stop()

    async def start_persona(self) -> None:
        await self.persona.serve(lambda server: build_persona(self.persona_config, server))

    async def stop_persona(self, grace: float = 0.0) -> None:
        await self.persona.stop(grace)

    async def start_dispatcher(self) -> None:
        if self.options.dispatcher_process:
            # Niced: its start-up must not starve the gateway and PersonaService in this process.
            await self.dispatcher.spawn(DispatcherProcess, self.dispatcher_env, nice=10)
        else:
            await self.dispatcher.serve(lambda server: build_dispatcher(self.dispatcher_config, server))

    async def stop_dispatcher(self, grace: float = 0.0) -> None:
        await self.dispatcher.stop(grace)

    async def kill_dispatcher(self) -> None:
        """SIGKILL the dispatcher process (`MeshOptions.dispatcher_process`): its requests in
        flight at LiveKit still land, its in-process claims are gone."""
        process = self.dispatcher.process
        assert process is not None, "kill_dispatcher needs MeshOptions(dispatcher_process=True)"
        await process.kill()
        self.dispatcher.process = None

    async def start_calls(self) -> None:
        if self.options.calls_process:
            # Niced: recording is off the call path and may lag (the gateway queues its reports);
            # the lookups and dispatches in this process may not.
            await self.calls.spawn(CallsProcess, self.calls_env, nice=10)
        else:
            await self.calls.serve(lambda server: build_calls(self.calls_config, server))

    async def stop_calls(self, grace: float = 0.0) -> None:
        await self.calls.stop(grace)

    async def start_gateway(self) -> None:
        gateway = build_gateway(self.gateway_config, HttpServerConfig(host=HOST, port=self._gateway_port))
        await gateway.start()
        self._gateway = gateway
        self.gateway_url = gateway.url
        self._gateway_port = gateway.port

    async def stop_gateway(self) -> None:
        """Uvicorn's shutdown: in-flight webhooks finish; `gateway_url` then refuses connections."""
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            await gateway.stop()

    # -- settings ------------------------------------------------------------------------

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis is not None else None

    @property
    def persona_config(self) -> PersonaConfig:
        options = self.options
        return PersonaConfig(
            crm=CrmConfig(
                api_base=self.crm.base_url,
                # No background probe: the CRM stand-in then counts the lookups' requests only.
                probe_interval_seconds=0,
                **_given(
                    max_attempts=options.crm_max_attempts,
                    backoff_initial_seconds=options.crm_backoff_initial_seconds,
                ),
            ),
            cache=CacheConfig(
                redis_url=self.redis_url,
                redis_key_prefix=self._prefix + "persona:",
                **_given(ttl_seconds=options.persona_cache_ttl_seconds),
            ),
        )

    @property
    def dispatcher_config(self) -> DispatcherConfig:
        return DispatcherConfig(
            livekit=LiveKitConfig(self.livekit.url, self.livekit.api_key, self.livekit.api_secret),
            claims=ClaimConfig(redis_url=self.redis_url, key_prefix=self._prefix + "claim:"),
            # Told of its creates that land after their request failed, as `friday up` wires it.
            calls=CallHistoryConfig(target=self.calls_target),
            **_given(retry=self.options.livekit_retry),
        )

    @property
    def dispatcher_env(self) -> dict[str, str]:
        """`dispatcher_config` as the environment of a `friday dispatcher serve` process."""
        config = self.dispatcher_config
        env = {
            "LIVEKIT_URL": config.livekit.url,
            "LIVEKIT_API_KEY": config.livekit.api_key,
            "LIVEKIT_API_SECRET": config.livekit.api_secret,
            "DISPATCHER_HOST": HOST,
            "DISPATCHER_CLAIM_PREFIX": config.claims.key_prefix,
            "DISPATCHER_RETRY_MAX_ATTEMPTS": str(config.retry.max_attempts),
            "DISPATCHER_RETRY_INITIAL_BACKOFF_SECONDS": str(config.retry.initial_backoff),
            "DISPATCHER_RETRY_MAX_BACKOFF_SECONDS": str(config.retry.max_backoff),
            "DISPATCHER_RETRY_ATTEMPT_TIMEOUT_SECONDS": str(config.retry.attempt_timeout),
        }
        if config.claims.redis_url:
            env["REDIS_URL"] = config.claims.redis_url
        if config.calls.target:
            env["CALLS_TARGET"] = config.calls.target
        return env

    @property
    def calls_database_path(self) -> str | None:
        """The SQLite file CallHistoryService keeps the mesh's calls in (None without it)."""
        if self._calls_dir is None:
            return None
        return f"{self._calls_dir.name}/calls.sqlite3"

    @property
    def calls_target(self) -> str | None:
        return f"{HOST}:{self.calls.port}" if self.options.call_history else None

    @property
    def calls_config(self) -> CallsConfig:
        path = self.calls_database_path
        assert path is not None, "calls_config needs MeshOptions(call_history=True) and a started mesh"
        return CallsConfig(
            store=StoreConfig(database_url=f"sqlite:///{path}"),
            **_given(no_agent_seconds=self.options.calls_no_agent_seconds),
        )

    @property
    def calls_env(self) -> dict[str, str]:
        """`calls_config` as the environment of a `friday calls serve` process."""
        config = self.calls_config
        return {
            "CALLS_HOST": HOST,
            "CALLS_METRICS_PORT": "0",
            "CALLS_DATABASE_URL": config.store.database_url,
            "CALLS_NO_AGENT_SECONDS": str(config.no_agent_seconds),
        }

    @property
    def gateway_config(self) -> GatewayConfig:
        options = self.options
        return GatewayConfig(
            webhook_api_key=WEBHOOK_KEY,
            webhook_api_secret=WEBHOOK_SECRET,
            persona_target=f"{HOST}:{self.persona.port}",
            dispatcher_target=f"{HOST}:{self.dispatcher.port}",
            redis_url=self.redis_url,
            redis_prefix=self._prefix + "gateway:",
            call_reporting=CallReportingConfig(target=self.calls_target),
            **_given(
                budget_seconds=options.gateway_budget_seconds,
                persona_timeout_seconds=options.gateway_persona_timeout_seconds,
                max_body_bytes=options.gateway_max_body_bytes,
            ),
        )

    # -- webhooks ------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        return self.gateway_url + WEBHOOK_PATH

    def signed_request(self, event: WebhookEvent, **sign_kwargs: Any) -> tuple[bytes, dict[str, str]]:
        """`event` as LiveKit sends it to this mesh: the body and its signed headers."""
        return livekit_webhooks.signed_request(event, WEBHOOK_KEY, WEBHOOK_SECRET, **sign_kwargs)

    async def deliver(self, event: WebhookEvent, **sign_kwargs: Any) -> httpx.Response:
        """One delivery of `event`, signed as LiveKit signs it (no redelivery on a 5xx), once
        LiveKit holds the room a participant joined or that started."""
        if event.event in ROOM_EVENTS and event.room.name:
            self.livekit.create_room(event.room.name)
        body, headers = self.signed_request(event, **sign_kwargs)
        return await self.post(body, headers)

    async def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """Raw bytes to the webhook endpoint: for bodies and headers LiveKit would never send."""
        return await self.http.post(self.webhook_url, content=body, headers=headers)
