"""A Redis of our own for the in-process mesh, which a fault may kill:
`redis-server --port <free> --save ""`.

The machine's shared Redis (127.0.0.1:6379) is never touched; a fault that needs
"Redis down" kills this one and starts it again on the same port (empty, as a
Redis without persistence comes back)."""

from __future__ import annotations

import asyncio
import shutil

import redis.asyncio as aioredis

from services.testing.child_process import ChildProcess


class RedisUnavailableError(RuntimeError):
    """No redis-server binary here: Redis faults cannot run."""


class RedisProcess(ChildProcess):
    name = "redis-server"

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailableError("redis-server is not installed (apt-get install redis-server)")
        super().__init__(port)
        self._binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *(self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        async def answers() -> bool:
            try:
                return bool(await client.ping())
            except (OSError, aioredis.RedisError):
                return False

        try:
            await self._wait_until(answers, timeout=timeout, interval=0.05)
        finally:
            await client.aclose()

    async def restart(self) -> None:
        await self.kill()
        await self.start()
