"""One service of the mesh as a child process: started in its own process
group (so a terminal's Ctrl-C reaches only `friday up`, which then stops the
children in order), its output streamed line by line with a prefix, its last
lines kept to explain an unexpected exit, and (for services) its launch report
read from a pipe only this child holds (services.common.launch_report). It can
be started again after it exited."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from services.common.launch_report import REPORT_FD_ENV, LaunchReport


class ChildProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        prefix_width: int = 10,
        reports: bool = False,  # whether it writes a launch report (our services do)
    ) -> None:
        self.name = name
        self.reports = reports
        self._argv = list(argv)
        self._env = dict(env)
        self._prefix = f"{name:<{prefix_width}}| "
        self._last_lines: collections.deque[str] = collections.deque(maxlen=15)
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._report: asyncio.Task[LaunchReport | None] | None = None
        self.stopping = False

    async def start(self) -> None:
        """Starts the process (again, after it exited)."""
        assert self._process is None or self._process.returncode is not None, f"{self.name} is running"
        self.stopping = False
        env: dict[str, str] = self._env
        pass_fds: tuple[int, ...] = ()
        read_fd: int | None = None
        if self.reports:
            read_fd, write_fd = os.pipe()
            env, pass_fds = {**self._env, REPORT_FD_ENV: str(write_fd)}, (write_fd,)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        finally:
            for fd in pass_fds:  # the child has its copy; ours would keep the pipe open after it died
                os.close(fd)
        self._pump = asyncio.create_task(self._stream_output())
        self._report = asyncio.create_task(self._read_report(read_fd)) if read_fd is not None else None

    async def report(self) -> LaunchReport | None:
        """The child's launch report: where it listens, or why it could not. None when it
        exited without one (or reports nothing, like the agent)."""
        return None if self._report is None else await asyncio.shield(self._report)

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

    @staticmethod
    async def _read_report(read_fd: int) -> LaunchReport | None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        try:
            line = await reader.readline()  # b"" once the child closed it without a report
        finally:
            transport.close()
        return LaunchReport.decode(line) if line else None

    async def _stream_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._last_lines.append(line)
            sys.stdout.write(self._prefix + line + "\n")
            sys.stdout.flush()
