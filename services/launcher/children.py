"""One service of the mesh as a child process: started in its own process
group (so a terminal's Ctrl-C reaches only `friday up`, which then stops the
children in order), its output streamed line by line with a prefix, and its
last lines kept to explain an unexpected exit."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import Mapping, Sequence


class ChildProcess:
    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], *, prefix_width: int = 10) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._prefix = f"{name:<{prefix_width}}| "
        self._last_lines: collections.deque[str] = collections.deque(maxlen=15)
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self.stopping = False

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self._argv,
            env=self._env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = asyncio.create_task(self._stream_output())

    @property
    def env(self) -> dict[str, str]:
        """The environment the child runs with (a copy)."""
        return dict(self._env)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    def last_lines(self) -> list[str]:
        return list(self._last_lines)

    async def wait(self) -> int:
        assert self._process is not None
        code = await self._process.wait()
        if self._pump is not None:
            await self._pump
        return code

    async def stop(self, grace_seconds: float) -> int:
        """SIGTERM (each service shuts down gracefully on it), SIGKILL after the grace."""
        self.stopping = True
        if self._process is None or self._process.returncode is not None:
            return self.returncode or 0
        self._signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), grace_seconds)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            return await self.wait()

    def _signal(self, signum: int) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:
            pass

    async def _stream_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._last_lines.append(line)
            sys.stdout.write(self._prefix + line + "\n")
            sys.stdout.flush()
