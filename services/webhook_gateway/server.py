"""The gateway's composition root: builds what the routes use (webhook verifier,
gRPC channels to PersonaService and DispatcherService, the event ledger, the call
flow, metrics) for the app's lifetime, and runs it on uvicorn — `serve()` for the
CLI, `start()` for tests and tools that need the bound port in their own loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from services.common import event_loop
from services.grpc_runtime.channel import is_serving
from services.webhook_gateway.app import GatewayState, create_app
from services.webhook_gateway.call_flow import CallFlow
from services.webhook_gateway.config import GatewayConfig
from services.webhook_gateway.dedupe import EventLedger, InProcessEventLedger, RedisEventLedger
from services.webhook_gateway.metrics import GatewayMetrics
from services.webhook_gateway.upstreams import GrpcAgentDispatcher, GrpcPersonaLookup, upstream_channel
from services.webhook_gateway.verification import WebhookVerifier


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
            ),
            metrics=GatewayMetrics(),
            max_body_bytes=config.max_body_bytes,
            readiness={
                "persona": functools.partial(is_serving, persona_channel, ready_timeout),
                "dispatcher": functools.partial(is_serving, dispatcher_channel, ready_timeout),
            },
        )
    finally:
        await ledger.close()
        for channel in (persona_channel, dispatcher_channel):
            await channel.close()


def build_app(config: GatewayConfig) -> Starlette:
    return create_app(functools.partial(wired, config))


def _uvicorn_config(config: GatewayConfig) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(config),
        host=config.host,
        port=config.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def serve(config: GatewayConfig) -> None:
    """Blocks until SIGINT/SIGTERM; uvicorn finishes in-flight webhooks before exiting."""
    server = uvicorn.Server(_uvicorn_config(config))
    event_loop.freeze_startup_heap()
    server.run()


@contextlib.asynccontextmanager
async def start(config: GatewayConfig) -> AsyncIterator[str]:
    """Run the gateway in the current loop; yields its base URL. Port 0 picks a free port."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto is TCP,
    # and without it keep-alive responses stall ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host if config.host != "0.0.0.0" else "127.0.0.1", config.port))
    server = uvicorn.Server(_uvicorn_config(config))
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]  # the host process owns signals
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
