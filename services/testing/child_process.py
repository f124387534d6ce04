"""What the killable child processes of the in-process mesh share (DispatcherProcess,
RedisProcess): a free port chosen up front, so a restart after a kill comes back where
clients point; the asyncio subprocess; waiting until it answers; and SIGKILL, as the OOM
killer or a node loss does it (no drain, nothing said to its clients)."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ChildProcess:
    """`name` is how errors call it ("dispatcher process", "redis-server")."""

    name = "child process"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def _wait_until(self, ready: Callable[[], Awaitable[bool]], *, timeout: float, interval: float) -> None:
        """Polls `ready` until it is true. The child exiting first is a RuntimeError; `timeout`
        passing first kills it and is a TimeoutError."""
        assert self._process is not None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while not await ready():
            if self._process.returncode is not None:
                raise RuntimeError(f"{self.name} on port {self.port} exited with {self._process.returncode} first")
            if loop.time() > give_up:
                await self.kill()
                raise TimeoutError(f"{self.name} on port {self.port} not ready after {timeout}s")
            await asyncio.sleep(interval)

    async def kill(self) -> None:
        """SIGKILL and wait for it to be gone."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)
            await self._process.wait()
        self._process = None
