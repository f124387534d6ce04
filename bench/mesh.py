"""Starting everything the benchmark measures, each as its own process: the CRM and
LiveKit stand-ins, the three services exactly as `friday up` plans them
(services.launcher), the floor, the bare health server and the load generator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.launcher.children import ChildProcess
from services.launcher.readiness import wait_until
from services.launcher.restarts import RestartPolicy
from services.launcher.service import Service
from services.launcher.settings import SETTINGS
from services.launcher.supervisor import STOP_GRACE_SECONDS, Supervisor
from services.launcher.up import plan
from services.testing.crm import BASE_PATH as CRM_BASE_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
# >= 32 bytes: livekit-api and PyJWT warn about shorter HMAC secrets.
API_SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
READY_TIMEOUT_SECONDS = 60.0
# Settings a developer's shell may carry that would change what is measured.
_ISOLATED_ENV = ("REDIS_URL", "PERSONA_FILE", "PERSONA_TOKEN", "DISPATCHER_TOKEN", "PERSONA_API_BASE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATED_ENV and not k.endswith("_TLS_CA_FILE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **(extra or {})}


async def start_announcing(name: str, module: str, *args: str) -> tuple[ChildProcess, str]:
    """`python -m module args`, waited for until it prints `READY <address>`."""
    child = ChildProcess(name, [sys.executable, "-m", module, *args], _child_env(), prefix_width=12)
    await child.start()

    async def announced() -> bool:
        if child.returncode is not None:
            raise RuntimeError(f"{name} exited with {child.returncode}: {child.last_lines()[-5:]}")
        return any(line.startswith("READY ") for line in child.last_lines())

    await asyncio.wait_for(wait_until(announced, interval=0.05), READY_TIMEOUT_SECONDS)
    ready = next(line for line in child.last_lines() if line.startswith("READY "))
    return child, ready.split()[1]


class StandIn:
    """A stand-in process and its control API (services.testing, `/_standin/...`)."""

    def __init__(self, child: ChildProcess, origin: str) -> None:
        self.child = child
        self.origin = origin

    async def control(self, name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(f"{self.origin}/_standin/{name}", json=payload or {})
            response.raise_for_status()
            return response.json()

    async def state(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.get(f"{self.origin}/_standin/state")
            response.raise_for_status()
            return response.json()


@dataclass
class Mesh:
    crm: StandIn
    livekit: StandIn
    services: list[Service]
    gateway_url: str
    persona_target: str
    extra: dict[str, ChildProcess] = field(default_factory=dict)
    # Planned but left for the caller to run (`running_mesh(gateway=False)`).
    not_started: list[Service] = field(default_factory=list)

    def pids(self) -> dict[str, int]:
        pids = {s.child.name: s.child.pid for s in self.services}
        pids["crm-standin"] = self.crm.child.pid
        pids["livekit-standin"] = self.livekit.child.pid
        pids.update({name: child.pid for name, child in self.extra.items()})
        return pids


def mesh_settings(crm: StandIn, livekit: StandIn, log_level: str, calls_database: Path) -> dict[str, str]:
    """`friday up` settings for the benchmark: stand-ins, free ports, no metrics HTTP servers
    (the metrics themselves are still recorded on every request), in-process cache, and a
    call history of this run's own in `calls_database`: `friday up`'s default is one SQLite
    file per user, which every checkout on the machine would share (another checkout's
    newer schema stops this one's CallHistoryService from starting) and which grows run
    after run."""
    settings = {s.env: s.default for s in SETTINGS}
    settings.update(
        {
            "PERSONA_PORT": str(free_port()),
            "DISPATCHER_PORT": str(free_port()),
            "CALLS_PORT": str(free_port()),
            "PORT": str(free_port()),
            "PERSONA_METRICS_PORT": "0",
            "DISPATCHER_METRICS_PORT": "0",
            "CALLS_METRICS_PORT": "0",
            "CALLS_DATABASE_URL": f"sqlite:///{calls_database}",
            "PERSONA_API_BASE": crm.origin + CRM_BASE_PATH,
            "PERSONA_FILE": "",
            "REDIS_URL": "",
            "LIVEKIT_URL": livekit.origin,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "DISPATCHER_TOKEN": "",
            "LOG_LEVEL": log_level,
            "FRIDAY_UP_REPLICAS": "1",
        }
    )
    return settings


@contextlib.asynccontextmanager
async def running_mesh(
    crm_personas: Path, *, log_level: str, calls_database: Path, gateway: bool = True
) -> AsyncIterator[Mesh]:
    """`gateway=False`: the gateway is planned but not started (`Mesh.not_started`), for
    a caller that runs it in its own process with the settings `friday up` gives it."""
    started: list[ChildProcess] = []
    try:
        crm_child, crm_origin = await start_announcing(
            "crm-standin", "services.testing.crm", "--port", "0", "--personas", str(crm_personas)
        )
        started.append(crm_child)
        lk_child, lk_origin = await start_announcing(
            "livekit-standin", "services.testing.livekit_api", "--port", "0", "--api-key", API_KEY,
            "--api-secret", API_SECRET, "--log-level", log_level,
        )  # fmt: skip
        started.append(lk_child)
        crm, livekit = StandIn(crm_child, crm_origin), StandIn(lk_child, lk_origin)
        settings = mesh_settings(crm, livekit, log_level, calls_database)
        # LiveKit as deployed: a worker for the agent name the gateway dispatches, so every
        # dispatch gets its job (the floor dispatches the same name: the same LiveKit work).
        await livekit.control("workers", {"agent_name": settings["AGENT_TO_DISPATCH"]})
        saved_env = {k: os.environ.pop(k) for k in _ISOLATED_ENV if k in os.environ}
        try:
            services = plan(settings, with_agent=False)  # the processes `friday up` would start
        finally:
            os.environ.update(saved_env)
        not_started = [] if gateway else [service for service in services if service.kind == "gateway"]
        services = [service for service in services if service not in not_started]
        started.extend(service.child for service in services)
        # Started and waited for exactly as `friday up` does (launch report, then health).
        supervisor = Supervisor(
            services, RestartPolicy(), ready_timeout=READY_TIMEOUT_SECONDS, stop_requested=asyncio.Event()
        )
        if not await supervisor.start_all():
            raise RuntimeError("the mesh did not start (the reason is printed above)")
        yield Mesh(
            crm=crm,
            livekit=livekit,
            services=services,
            gateway_url=f"http://127.0.0.1:{settings['PORT']}",
            persona_target=f"127.0.0.1:{settings['PERSONA_PORT']}",
            not_started=not_started,
        )
    finally:
        # Gateway first, stand-ins last: the launcher's order.
        for child in reversed(started):
            await child.stop(STOP_GRACE_SECONDS)


class LoadGenerator:
    """The `python -m bench.loadgen` process: one JSON job in, one result out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @classmethod
    async def start(cls) -> LoadGenerator:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", env=_child_env(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        generator = cls(process)
        await generator._read_line("READY")
        return generator

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write((json.dumps(job) + "\n").encode())
        await self._process.stdin.drain()
        result = json.loads(await self._read_line("RESULT "))
        if "failed" in result:
            raise RuntimeError(f"load generator failed: {result['failed']}")
        return result

    async def _read_line(self, prefix: str) -> str:
        assert self._process.stdout is not None
        while line := (await self._process.stdout.readline()).decode():
            if line.startswith(prefix):
                return line[len(prefix) :]
            sys.stdout.write(f"loadgen     | {line}")
        raise RuntimeError(f"load generator exited with {await self._process.wait()}")

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
