"""The aiohttp plumbing every stand-in shares: start on 127.0.0.1, learn the bound port, stop.

Kept apart from the protocol logic so each stand-in module only says what it answers.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Self

from aiohttp import web

from services.common import event_loop

CONTROL_PREFIX = "/_standin/"


class HttpStandIn:
    """Base class: an aiohttp application served in the *current* event loop.

    Subclasses implement ``_handle(request)`` for every path except the control API under
    ``/_standin/``, which they extend via ``_control(name, request)``.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int = 0

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> Self:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # access_log=None: the benchmark pushes hundreds of req/s and logging each is pure overhead.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the real port when asked for port 0
        self._port = self.port  # so that a stop() and start() comes back where clients point
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            name = request.path[len(CONTROL_PREFIX) :]
            try:
                return await self._control(name, request)
            except (ValueError, KeyError, TypeError) as exc:
                return web.json_response({"error": f"bad control request: {exc!r}"}, status=400)
        return await self._handle(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def _control(self, name: str, request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": f"unknown control endpoint {name!r}"}, status=404)


async def read_json(request: web.Request) -> dict[str, Any]:
    """Control-endpoint bodies are small JSON objects; an empty body means ``{}``."""
    raw = await request.read()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("control body must be a JSON object")
    return data


def run_standalone(make: Callable[[], Awaitable[HttpStandIn]]) -> None:
    """Serve until killed, printing ``READY <origin>`` once listening so a parent process can wait for it."""

    async def main() -> None:
        standin = await make()
        stop = asyncio.Event()
        # SIGTERM from the parent (end-to-end tests, benchmark) should close the socket cleanly.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"READY {standin.origin}", flush=True)
        try:
            await stop.wait()
        finally:
            await standin.stop()

    try:
        # uvloop like the services: the benchmark runs stand-ins on the same two cores as the mesh.
        event_loop.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
