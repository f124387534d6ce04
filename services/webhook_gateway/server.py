"""The gateway's composition root: builds what the routes use (webhook verifier,
gRPC channels to PersonaService and DispatcherService, the event ledger, the call
flow, metrics) for the app's lifetime, and hosts it on uvicorn: `build_server(config,
server_config)` like the gRPC services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette

from services.common import secrets_check
from services.common.listen_address import bind_failure, dialable_host, host_port, is_loopback
from services.common.metrics_auth import METRICS_TOKEN_ENV, MetricsToken
from services.grpc_runtime.channel import is_serving
from services.webhook_gateway.app import GatewayState, create_app
from services.webhook_gateway.call_flow import CallFlow
from services.webhook_gateway.call_reporter import CallReporter, CallReporterMetrics, GrpcCallHistory
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from services.webhook_gateway.dedupe import EventLedger, InProcessEventLedger, RedisEventLedger
from services.webhook_gateway.metrics import GatewayMetrics
from services.webhook_gateway.read_deadlines import ReadDeadlineProtocol
from services.webhook_gateway.upstreams import GrpcAgentDispatcher, GrpcPersonaLookup, upstream_channel
from services.webhook_gateway.verification import WebhookVerifier

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def wired(config: GatewayConfig) -> AsyncIterator[GatewayState]:
    """Everything the routes share, open for as long as the context is."""
    persona_channel = upstream_channel(config.persona_target, config.persona_tls)
    dispatcher_channel = upstream_channel(config.dispatcher_target, config.dispatcher_tls)
    ledger: EventLedger
    if config.redis_url:
        ledger = RedisEventLedger.from_url(
            config.redis_url, config.redis_prefix, config.dedupe_ttl_seconds, config.dedupe_max_entries
        )
    else:
        ledger = InProcessEventLedger(config.dedupe_ttl_seconds, config.dedupe_max_entries)
    ready_timeout = config.ready_timeout_seconds
    secrets_check.check_secret("LIVEKIT_WEBHOOK_API_SECRET", config.webhook_api_secret)
    metrics = GatewayMetrics()
    reporting = config.call_reporting
    calls_channel = upstream_channel(reporting.target, reporting.tls) if reporting.target else None
    reporter = None
    if calls_channel is not None:
        sink = GrpcCallHistory(calls_channel, reporting.token)
        reporter = CallReporter(sink, reporting, CallReporterMetrics(metrics.registry))
        await reporter.start()
    try:
        yield GatewayState(
            verifier=WebhookVerifier(config.webhook_api_key, config.webhook_api_secret),
            flow=CallFlow(
                GrpcPersonaLookup(persona_channel, config.persona_token),
                GrpcAgentDispatcher(dispatcher_channel, config.dispatcher_token),
                ledger,
                agent_name=config.agent_name,
                budget_seconds=config.budget_seconds,
                persona_timeout_seconds=config.persona_timeout_seconds,
                count_dropped_fact=metrics.count_dropped_fact,
            ),
            metrics=metrics,
            max_body_bytes=config.max_body_bytes,
            readiness={
                "persona": functools.partial(is_serving, persona_channel, ready_timeout),
                "dispatcher": functools.partial(is_serving, dispatcher_channel, ready_timeout),
            },
            calls=reporter,
            agent_name=config.agent_name,
            metrics_token=MetricsToken(config.metrics_token) if config.metrics_token else None,
        )
    finally:
        if reporter is not None:
            await reporter.close()
        if calls_channel is not None:
            await calls_channel.close()
        await ledger.close()
        for channel in (persona_channel, dispatcher_channel):
            await channel.close()


def build_app(config: GatewayConfig) -> Starlette:
    return create_app(functools.partial(wired, config))


def uvicorn_config(config: GatewayConfig, server_config: HttpServerConfig) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(config), host=server_config.host, port=server_config.port, **http_settings(server_config)
    )


def http_settings(server_config: HttpServerConfig) -> dict[str, Any]:
    """uvicorn's settings for the gateway's HTTP, whatever app it serves: the limits an
    unauthenticated peer meets (README, "What a hostile client gets"), uvicorn's own caps
    where it has them, read deadlines where it has none."""
    return {
        # h11, not the httptools default: only h11 caps the request head's size.
        "http": ReadDeadlineProtocol.with_deadlines(
            server_config.header_timeout_seconds, server_config.body_timeout_seconds
        ),
        "h11_max_incomplete_event_size": server_config.max_header_bytes,
        "limit_concurrency": server_config.max_connections,
        "timeout_keep_alive": math.ceil(server_config.keep_alive_seconds),
        "ws": "none",  # the gateway serves no WebSocket; an Upgrade is a plain request
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": math.ceil(server_config.shutdown_grace_seconds),
    }


class GatewayServer:
    """Lifecycle like GrpcServer's: `await start()` → `url`/`port` valid → `await stop()`
    (or `async with`); `serve()` for the CLI runs until SIGTERM/SIGINT, then drains."""

    def __init__(self, config: GatewayConfig, server_config: HttpServerConfig) -> None:
        self.config = config
        self.server_config = server_config
        self._uvicorn = uvicorn.Server(uvicorn_config(config, server_config))
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the gateway is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{host_port(dialable_host(self.server_config.host), self.port)}"

    def endpoints(self) -> dict[str, str]:
        """What this server bound, by role (`http`), as host:port."""
        return {"http": host_port(self.server_config.host, self.port)}

    async def serve(self, on_listening: Callable[[], None] | None = None) -> None:
        """Blocks until SIGINT/SIGTERM; uvicorn finishes in-flight webhooks before returning.
        `on_listening` runs once the port is bound and the app has started."""
        await self._launch(own_signals=True)
        if on_listening is not None:
            on_listening()
        assert self._task is not None
        try:
            await self._task
        finally:
            self._task = None
            self._close_socket()

    async def start(self) -> None:
        """Serve in the current loop without taking over signals (the host process owns them)."""
        await self._launch(own_signals=False)

    async def _launch(self, *, own_signals: bool) -> None:
        sock = self._bind()
        self._socket = sock
        if not own_signals:
            self._uvicorn.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        self._task = asyncio.create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        if not self.config.metrics_token and not is_loopback(self.server_config.host):
            # The webhook has its signatures; /metrics beside it has nothing without the token.
            logger.warning("gateway /metrics on %s needs no token: set %s", self.endpoints()["http"], METRICS_TOKEN_ENV)

    def _bind(self) -> socket.socket:
        host, port = self.server_config.host, self.server_config.port
        bare = host.strip("[]")
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto is TCP,
        # and without it keep-alive responses stall on delayed ACKs.
        family = socket.AF_INET6 if ":" in bare else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bare or "0.0.0.0", port))
        except OSError:
            sock.close()
            raise bind_failure("gateway HTTP", host, port) from None
        return sock

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._uvicorn.should_exit = True
        task, self._task = self._task, None
        await task
        self._close_socket()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def build_server(config: GatewayConfig, server_config: HttpServerConfig) -> GatewayServer:
    """A ready-to-start gateway (`await server.start()` or `await server.serve()`)."""
    return GatewayServer(config, server_config)
