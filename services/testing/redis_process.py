"""A Redis of our own for the in-process mesh, which a fault may kill:
`redis-server --port <free> --save ""`.

The machine's shared Redis (127.0.0.1:6379) is never touched; a fault that needs
"Redis down" kills this one and starts it again on the same port (empty, as a
Redis without persistence comes back)."""

from __future__ import annotations

import asyncio
import shutil
import socket

import redis.asyncio as aioredis


class RedisUnavailableError(RuntimeError):
    """No redis-server binary here: Redis faults cannot run."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server is not installed (apt-get install redis-server)")
        self._binary = binary
        self.port = port or free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, timeout: float = 10.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *(self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + timeout
            while True:
                try:
                    if await client.ping():
                        return
                except (OSError, aioredis.RedisError):
                    pass
                if self._process.returncode is not None or loop.time() > give_up:
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL, as a crashed or OOM-killed Redis: no goodbye to the clients."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._process = None

    async def restart(self) -> None:
        await self.kill()
        await self.start()
