"""Runs the mesh: PersonaService, DispatcherService and the gateway (and the
agent with --with-agent) as separate processes, in dependency order, each
waited for until it reports ready. Stops them all, gateway first, on SIGINT or
SIGTERM and exits 0; if one dies on its own, says which and why and exits 1."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass

from .children import ChildProcess
from .readiness import grpc_serving, http_ready, wait_until

# Replica i of a gRPC service listens on base + REPLICA_PORT_STEP * i, so the
# persona (50051) and dispatcher (50052) port ranges never meet.
REPLICA_PORT_STEP = 10
STOP_GRACE_SECONDS = 10.0


@dataclass
class Service:
    child: ChildProcess
    kind: str  # "persona", "dispatcher", "gateway", "agent"
    address: str
    metrics: str
    ready_check: object | None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def _port(base: str, replica: int) -> str:
    value = int(base)
    return "0" if value == 0 else str(value + REPLICA_PORT_STEP * replica)


def plan(settings: dict[str, str], *, with_agent: bool) -> list[Service]:
    """The processes to start, in start order, with the environment each gets."""
    replicas = max(1, int(settings["FRIDAY_UP_REPLICAS"]))
    base_env = {**os.environ, **{k: v for k, v in settings.items() if v != ""}}
    base_env["PYTHONUNBUFFERED"] = "1"
    services: list[Service] = []
    persona_targets, dispatcher_targets = [], []
    for kind in ("persona", "dispatcher"):
        prefix = kind.upper()
        for replica in range(replicas):
            port = _port(settings[f"{prefix}_PORT"], replica)
            metrics_port = _port(settings[f"{prefix}_METRICS_PORT"], replica)
            env = {**base_env, f"{prefix}_PORT": port, f"{prefix}_METRICS_PORT": metrics_port}
            target = f"127.0.0.1:{port}"
            (persona_targets if kind == "persona" else dispatcher_targets).append(target)
            name = kind if replicas == 1 else f"{kind}-{replica + 1}"
            services.append(
                Service(
                    ChildProcess(name, _cli(kind, "serve"), env),
                    kind,
                    f"grpc://{target}",
                    f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port != "0" else "(off)",
                    lambda target=target: grpc_serving(target, 1.0),
                )
            )
    # Several targets become one round_robin channel (see the gateway's channel setup).
    persona_target = persona_targets[0] if replicas == 1 else "ipv4:" + ",".join(persona_targets)
    dispatcher_target = dispatcher_targets[0] if replicas == 1 else "ipv4:" + ",".join(dispatcher_targets)
    for replica in range(replicas):
        port = str(int(settings["PORT"]) + replica)
        env = {**base_env, "PORT": port, "PERSONA_TARGET": persona_target, "DISPATCHER_TARGET": dispatcher_target}
        url = f"http://127.0.0.1:{port}"
        name = "gateway" if replicas == 1 else f"gateway-{replica + 1}"
        services.append(
            Service(
                ChildProcess(name, _cli("gateway", "serve"), env),
                "gateway",
                f"{url}/livekit-webhook",
                f"{url}/metrics",
                lambda url=url: http_ready(f"{url}/ready", 1.0),
            )
        )
    if with_agent:
        services.append(
            Service(
                ChildProcess("agent", _cli("agent", "start"), base_env), "agent", settings["LIVEKIT_URL"], "-", None
            )
        )
    return services


def describe(services: list[Service], settings: dict[str, str]) -> str:
    persona_source = (
        f"CRM {settings['PERSONA_API_BASE']}"
        if settings["PERSONA_API_BASE"]
        else f"file {settings['PERSONA_FILE'] or '(embedded example personas)'}"
    )
    cache = f"Redis {settings['REDIS_URL']}" if settings["REDIS_URL"] else "in-process"
    rows = [("SERVICE", "PID", "ADDRESS", "METRICS")]
    rows += [(s.child.name, str(s.child.pid), s.address, s.metrics) for s in services]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines += [
        "",
        f"persona source: {persona_source}",
        f"cache backend:  {cache}",
        f"LiveKit URL:    {settings['LIVEKIT_URL']}  (agent name {settings['AGENT_TO_DISPATCH']})",
    ]
    return "\n".join(lines)


async def run(settings: dict[str, str], *, with_agent: bool) -> int:
    services = plan(settings, with_agent=with_agent)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    exit_code = 0
    try:
        exit_code = await _start_all(services, settings, stop_requested)
        if exit_code == 0:
            exit_code = await _supervise(services, stop_requested)
    finally:
        await _stop_all(services)
    return exit_code


async def _start_all(services: list[Service], settings: dict[str, str], stop_requested: asyncio.Event) -> int:
    timeout = float(settings["FRIDAY_UP_READY_TIMEOUT"])
    for service in services:
        await service.child.start()
    for service in services:
        if service.ready_check is None:
            continue
        ready = asyncio.ensure_future(wait_until(service.ready_check))
        died = asyncio.ensure_future(service.child.wait())
        stopped = asyncio.ensure_future(stop_requested.wait())
        done, pending = await asyncio.wait({ready, died, stopped}, timeout=timeout, return_when="FIRST_COMPLETED")
        for task in pending:
            task.cancel()
        if stopped in done:
            return 0
        if died in done:
            _report_death(service)
            return 1
        if ready not in done:
            print(f"friday up: {service.child.name} was not ready after {timeout:.0f}s", file=sys.stderr)
            return 1
    print("\nfriday up: the mesh is ready\n" + describe(services, settings) + "\n", flush=True)
    return 0


async def _supervise(services: list[Service], stop_requested: asyncio.Event) -> int:
    waits = {asyncio.ensure_future(s.child.wait()): s for s in services}
    stopped = asyncio.ensure_future(stop_requested.wait())
    done, _ = await asyncio.wait({stopped, *waits}, return_when="FIRST_COMPLETED")
    for task in waits:
        if task in done:
            _report_death(waits[task])
            return 1
    print("friday up: stopping", flush=True)
    return 0


def _report_death(service: Service) -> None:
    why = "\n".join(f"    {line}" for line in service.child.last_lines()[-8:]) or "    (no output)"
    print(
        f"friday up: {service.child.name} exited with code {service.child.returncode}; its last output:\n{why}",
        file=sys.stderr,
        flush=True,
    )


async def _stop_all(services: list[Service]) -> None:
    # Gateway first so no webhook arrives at a half-stopped mesh, then the services it calls.
    order = {"gateway": 0, "agent": 1, "dispatcher": 2, "persona": 3}
    for rank in sorted(set(order.values())):
        group = [s for s in services if order[s.kind] == rank]
        await asyncio.gather(*(s.child.stop(STOP_GRACE_SECONDS) for s in group))
