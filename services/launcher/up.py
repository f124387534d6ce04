"""Runs the mesh: PersonaService, DispatcherService and the gateway (and the
agent with --with-agent) as separate processes, in dependency order, each
waited for until it reports ready. Stops them all, gateway first, on SIGINT or
SIGTERM and exits 0; if one dies on its own, says which and why and exits 1.

With --replicas N (N > 1) every service runs N times on its own ports, the
gateways balance over all persona and dispatcher replicas, and all of them share
Redis (required: claims, dedupe and the persona cache must be shared for
exactly-one dispatch to hold across replicas). A replica that dies is reported
and the mesh keeps running on the others, so the topology can be tried by
killing replicas; only when the last replica of a service is gone does `friday
up` stop everything and exit 1."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import sys
from dataclasses import dataclass

from services.calls.config import default_database_url
from services.grpc_runtime.config import ClientTLSConfig
from services.launcher.children import ChildProcess
from services.launcher.readiness import grpc_serving, http_ready, wait_until

# Replica i of a gRPC service listens on base + REPLICA_PORT_STEP * i, so the
# persona (50051) and dispatcher (50052) port ranges never meet.
REPLICA_PORT_STEP = 10
STOP_GRACE_SECONDS = 10.0
# livekit-agents' worker serves its health check here in production mode (`agent start`).
AGENT_HEALTH_PORT = "8081"


@dataclass
class Service:
    child: ChildProcess
    kind: str  # "persona", "dispatcher", "calls", "gateway", "agent"
    address: str
    metrics: str
    ready_check: object | None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def _port(base: str, replica: int) -> str:
    value = int(base)
    return "0" if value == 0 else str(value + REPLICA_PORT_STEP * replica)


class PlanError(ValueError):
    """Settings that cannot make a working mesh; the message says what to change."""


def replica_count(settings: dict[str, str]) -> int:
    text = settings["FRIDAY_UP_REPLICAS"].strip()
    try:
        replicas = int(text)
    except ValueError:
        raise PlanError(f"--replicas must be a whole number, got {text!r}") from None
    if not 1 <= replicas <= REPLICA_PORT_STEP:
        # Beyond REPLICA_PORT_STEP, replica ports of one service would run into the next service's.
        raise PlanError(f"--replicas must be between 1 and {REPLICA_PORT_STEP}, got {replicas}")
    if replicas > 1 and not settings["REDIS_URL"]:
        raise PlanError(
            f"--replicas {replicas} needs --redis-url (env REDIS_URL): the replicas must share dispatch claims, "
            "webhook dedupe and the persona cache, or two dispatcher replicas could both dispatch an agent "
            "for one call. Start one with `redis-server` (or `docker run -p 6379:6379 redis`) and pass "
            "--redis-url redis://127.0.0.1:6379/0"
        )
    return replicas


def plan(settings: dict[str, str], *, with_agent: bool) -> list[Service]:
    """The processes to start, in start order, with the environment each gets.
    Raises PlanError for settings that cannot work."""
    replicas = replica_count(settings)
    base_env = {**os.environ, **{k: v for k, v in settings.items() if v != ""}}
    base_env["PYTHONUNBUFFERED"] = "1"
    services: list[Service] = []
    persona_targets: list[str] = []
    dispatcher_targets: list[str] = []
    prefix_width = len("dispatcher") + (0 if replicas == 1 else len(f"-{replicas}")) + 1  # longest name + a space
    for kind in ("persona", "dispatcher"):
        prefix = kind.upper()
        for replica in range(replicas):
            port = _port(settings[f"{prefix}_PORT"], replica)
            metrics_port = _port(settings[f"{prefix}_METRICS_PORT"], replica)
            env = {**base_env, f"{prefix}_PORT": port, f"{prefix}_METRICS_PORT": metrics_port}
            target = f"127.0.0.1:{port}"
            client_tls = ClientTLSConfig.from_env(prefix, env)  # as the gateway will reach it
            (persona_targets if kind == "persona" else dispatcher_targets).append(target)
            name = kind if replicas == 1 else f"{kind}-{replica + 1}"
            services.append(
                Service(
                    ChildProcess(name, _cli(kind, "serve"), env, prefix_width=prefix_width),
                    kind,
                    f"grpc://{target}",
                    f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port != "0" else "(off)",
                    functools.partial(grpc_serving, target, 1.0, client_tls),
                )
            )
    # One CallHistoryService whatever --replicas: its database is the state replicas would share
    # (several need one PostgreSQL, CALLS_DATABASE_URL). The gateways report calls to it.
    calls_target = f"127.0.0.1:{settings['CALLS_PORT']}"
    calls_metrics = settings["CALLS_METRICS_PORT"]
    services.append(
        Service(
            ChildProcess("calls", _cli("calls", "serve"), base_env, prefix_width=prefix_width),
            "calls",
            f"grpc://{calls_target}",
            f"http://127.0.0.1:{calls_metrics}/metrics" if calls_metrics != "0" else "(off)",
            functools.partial(grpc_serving, calls_target, 1.0, ClientTLSConfig.from_env("CALLS", base_env)),
        )
    )
    # Several targets become one round_robin channel (see the gateway's channel setup).
    persona_target = persona_targets[0] if replicas == 1 else "ipv4:" + ",".join(persona_targets)
    dispatcher_target = dispatcher_targets[0] if replicas == 1 else "ipv4:" + ",".join(dispatcher_targets)
    for replica in range(replicas):
        port = str(int(settings["PORT"]) + replica)
        env = {
            **base_env,
            "PORT": port,
            "PERSONA_TARGET": persona_target,
            "DISPATCHER_TARGET": dispatcher_target,
            "CALLS_TARGET": calls_target,
        }
        url = f"http://127.0.0.1:{port}"
        name = "gateway" if replicas == 1 else f"gateway-{replica + 1}"
        services.append(
            Service(
                ChildProcess(name, _cli("gateway", "serve"), env, prefix_width=prefix_width),
                "gateway",
                f"{url}/livekit-webhook",
                f"{url}/metrics",
                lambda url=url: http_ready(f"{url}/ready", 1.0),
            )
        )
    if with_agent:
        services.append(
            Service(
                ChildProcess("agent", _cli("agent", "start"), base_env, prefix_width=prefix_width),
                "agent",
                settings["LIVEKIT_URL"],
                "-",
                None,
            )
        )
    _check_ports(services, settings)
    return services


def _check_ports(services: list[Service], settings: dict[str, str]) -> None:
    """Two children on one port: the second would die at bind with a less helpful message."""
    owners: dict[str, str] = {}
    for service in services:
        env = service.child.env
        if service.kind == "agent":
            ports = [AGENT_HEALTH_PORT]
        elif service.kind == "gateway":
            ports = [env["PORT"]]
        else:
            ports = [env[f"{service.kind.upper()}_PORT"], env[f"{service.kind.upper()}_METRICS_PORT"]]
        for port in ports:
            if port == "0":
                continue
            if port in owners:
                raise PlanError(
                    f"port {port} would be used by both {owners[port]} and {service.child.name}; with "
                    f"--replicas {settings['FRIDAY_UP_REPLICAS']} replica i of a gRPC service uses base + "
                    f"{REPLICA_PORT_STEP}*i and gateway i uses --gateway-port + i: choose base ports further apart"
                )
            owners[port] = service.child.name


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
    gateway_env = next((s.child.env for s in services if s.kind == "gateway"), {})
    lines += [""]
    if sum(1 for s in services if s.kind == "gateway") > 1:
        lines += [
            "gateways balance (round_robin, client-side health checking) over",
            f"  persona:    {gateway_env.get('PERSONA_TARGET', '?')}",
            f"  dispatcher: {gateway_env.get('DISPATCHER_TARGET', '?')}",
            "a replica that dies is reported; the mesh runs on while one replica of each service lives",
            "",
        ]
    lines += [
        f"persona source: {persona_source}",
        f"cache backend:  {cache}",
        f"LiveKit URL:    {settings['LIVEKIT_URL']}  (agent name {settings['AGENT_TO_DISPATCH']})",
        f"call history:   {_without_password(settings['CALLS_DATABASE_URL'] or default_database_url())}",
    ]
    return "\n".join(lines)


def _without_password(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


async def run(settings: dict[str, str], *, with_agent: bool) -> int:
    try:
        services = plan(settings, with_agent=with_agent)
    except PlanError as exc:
        print(f"friday up: {exc}", file=sys.stderr, flush=True)
        return 2
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
    try:
        while True:
            done, _ = await asyncio.wait({stopped, *waits}, return_when="FIRST_COMPLETED")
            if stopped in done:
                print("friday up: stopping", flush=True)
                return 0
            for task in [t for t in waits if t in done]:
                dead = waits.pop(task)
                _report_death(dead)
                left = [s.child.name for s in waits.values() if s.kind == dead.kind]
                if not left:
                    return 1
                print(
                    f"friday up: {dead.child.name} is gone; still running: {', '.join(left)}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stopped.cancel()  # the child waits finish on their own once _stop_all stops the children


def _report_death(service: Service) -> None:
    why = "\n".join(f"    {line}" for line in service.child.last_lines()[-8:]) or "    (no output)"
    print(
        f"friday up: {service.child.name} exited with code {service.child.returncode}; its last output:\n{why}",
        file=sys.stderr,
        flush=True,
    )


async def _stop_all(services: list[Service]) -> None:
    # Gateway first so no webhook arrives at a half-stopped mesh, then the services it calls.
    order = {"gateway": 0, "agent": 1, "dispatcher": 2, "calls": 2, "persona": 3}
    for rank in sorted(set(order.values())):
        group = [s for s in services if order[s.kind] == rank]
        await asyncio.gather(*(s.child.stop(STOP_GRACE_SECONDS) for s in group))
