"""Running the gateway on uvicorn: `serve()` for the CLI, `start()` for tests
and tools that need the bound port inside their own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

from services.common import event_loop

from .app import create_app
from .config import GatewayConfig


def _uvicorn_config(config: GatewayConfig) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
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
    server.install_signal_handlers = lambda: None  # the host process owns signals
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
