"""DispatcherService as a real process (`friday dispatcher serve`), for faults that
need what only a process can do: die by SIGKILL, in the middle of a request, taking
its in-process claims and its in-flight LiveKit requests with it.

    proc = DispatcherProcess(env={"LIVEKIT_URL": lk.url, ...})
    await proc.start()      # on a free port; again after kill(), on the same port
    proc.target             # "127.0.0.1:PORT"
    await proc.kill()       # SIGKILL: no drain, no claim kept or released

`ServiceProcess` is what it shares with the mesh's other gRPC services run as processes
(CallsProcess): `friday <subcommand> serve --port N`, ready once its health says SERVING.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc

from services.grpc_runtime.channel import is_serving
from services.testing.child_process import HOST, ChildProcess

# Where this `services` package is imported from: the child imports the same code.
IMPORT_ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess(ChildProcess):
    """One of the mesh's gRPC services as a process: `friday <SUBCOMMAND> --port N`."""

    SUBCOMMAND: tuple[str, ...] = ()
    # Settings (name prefixes) of the service's own: never inherited from the caller's shell.
    OWN_SETTINGS: tuple[str, ...] = ()

    def __init__(self, env: Mapping[str, str], *, port: int = 0, log_level: str = "WARNING", nice: int = 0) -> None:
        """`env`: the service's settings (for the dispatcher LIVEKIT_URL, REDIS_URL, DISPATCHER_...).
        `nice`: a lower CPU priority, so that its start-up (seconds of imports on a small
        machine) does not starve the callers' side running in the test's own process."""
        super().__init__(port)
        self._env = dict(env)
        self._log_level = log_level
        self._nice = nice

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn it and wait until its health answers SERVING (a loaded machine takes seconds)."""
        # Only the settings given: none of the service's own leaks in from the caller's shell.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(self.OWN_SETTINGS)}
        env = {**inherited, **self._env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(IMPORT_ROOT), env.get("PYTHONPATH")]))
        niced = ("nice", "-n", str(self._nice)) if self._nice else ()
        self._process = await asyncio.create_subprocess_exec(
            *niced,
            *(sys.executable, "-m", "services.cli", *self.SUBCOMMAND),
            *("--port", str(self.port), "--metrics-port", "0", "--log-level", self._log_level),
            cwd=IMPORT_ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )
        async with grpc.aio.insecure_channel(self.target) as channel:
            await self._wait_until(lambda: is_serving(channel, timeout=1.0), timeout=timeout, interval=0.1)

    async def stop(self) -> None:
        """SIGTERM (graceful drain), SIGKILL if it does not exit."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), 20)
            except TimeoutError:
                await self.kill()
        self._process = None


class DispatcherProcess(ServiceProcess):
    name = "dispatcher process"
    SUBCOMMAND = ("dispatcher", "serve")
    OWN_SETTINGS = ("DISPATCHER_", "LIVEKIT_", "REDIS_URL", "CALLS_")
