"""Runs the mesh: PersonaService, DispatcherService and the gateway (and the
agent with --with-agent) as separate processes, in dependency order, each
waited for until it reports ready. Every service binds --host (loopback unless
told otherwise; services.launcher.exposure says when another host is allowed).
A service that exits on its own is restarted (services.launcher.restarts); one
that keeps crashing stops the mesh with exit 1. SIGINT or SIGTERM stops them
all, gateway first, and exits 0.

With --replicas N (N > 1) every service runs N times on its own ports, the
gateways balance over all persona and dispatcher replicas, and all of them share
Redis (required: claims, dedupe and the persona cache must be shared for
exactly-one dispatch to hold across replicas). While a replica restarts, the
gateways send its calls to the others."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

from services.calls.config import default_database_url
from services.common import ports
from services.common.listen_address import host_port, is_loopback
from services.grpc_runtime.config import ClientTLSConfig
from services.launcher.children import ChildProcess
from services.launcher.exposure import exposure_problem
from services.launcher.readiness import dial_address, gateway_ready_check, grpc_ready_check
from services.launcher.restarts import RestartPolicy
from services.launcher.service import Service
from services.launcher.supervisor import Supervisor

# Replica i of a gRPC service listens on base + REPLICA_PORT_STEP * i, so the
# persona and dispatcher port ranges (50051 and 50052 by default) never meet.
REPLICA_PORT_STEP = 10
# livekit-agents' worker serves its health check here in production mode (`agent start`).
AGENT_HEALTH_PORT = str(ports.AGENT_HEALTH)
# The gRPC services, in start order: the name is the `friday <name> serve` command and,
# upper-cased, the prefix of their settings (PERSONA_PORT, PERSONA_HOST, ...).
GRPC_SERVICES = ("persona", "dispatcher")


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
    if problem := exposure_problem(settings, base_env):
        raise PlanError(problem)
    host = settings["FRIDAY_UP_HOST"].strip()
    services: list[Service] = []
    targets: dict[str, list[str]] = {}
    prefix_width = len("dispatcher") + (0 if replicas == 1 else len(f"-{replicas}")) + 1  # longest name + a space
    calls_endpoints = {"grpc": host_port(host, int(settings["CALLS_PORT"]))}
    # The gateways report every call to CallHistoryService; the dispatchers the creates that
    # landed after their request failed (services/dispatcher/late_landings.py).
    calls_target = {"CALLS_TARGET": dial_address(calls_endpoints["grpc"])}
    for kind in GRPC_SERVICES:
        prefix = kind.upper()
        for replica in range(replicas):
            port = _port(settings[f"{prefix}_PORT"], replica)
            metrics_port = _port(settings[f"{prefix}_METRICS_PORT"], replica)
            env = {
                **base_env,
                f"{prefix}_HOST": host,
                f"{prefix}_PORT": port,
                f"{prefix}_METRICS_HOST": host,
                f"{prefix}_METRICS_PORT": metrics_port,
                **(calls_target if kind == "dispatcher" else {}),
            }
            endpoints = {"grpc": host_port(host, int(port))}
            if metrics_port != "0":
                endpoints["metrics"] = host_port(host, int(metrics_port))
            targets.setdefault(kind, []).append(dial_address(endpoints["grpc"]))
            name = kind if replicas == 1 else f"{kind}-{replica + 1}"
            services.append(
                Service(
                    ChildProcess(name, _cli(kind, "serve"), env, prefix_width=prefix_width, reports=True),
                    kind,
                    "grpc://{grpc}",
                    "http://{metrics}/metrics",
                    endpoints,
                    grpc_ready_check(ClientTLSConfig.from_env(prefix, env)),  # as the gateway will reach it
                )
            )
    # One CallHistoryService whatever --replicas: its database is the state replicas would share
    # (several need one PostgreSQL, CALLS_DATABASE_URL). The gateways report calls to it.
    calls_port, calls_metrics = settings["CALLS_PORT"], settings["CALLS_METRICS_PORT"]
    calls_env = {
        **base_env,
        "CALLS_HOST": host,
        "CALLS_PORT": calls_port,
        "CALLS_METRICS_HOST": host,
        "CALLS_METRICS_PORT": calls_metrics,
    }
    if calls_metrics != "0":
        calls_endpoints["metrics"] = host_port(host, int(calls_metrics))
    services.append(
        Service(
            ChildProcess("calls", _cli("calls", "serve"), calls_env, prefix_width=prefix_width, reports=True),
            "calls",
            "grpc://{grpc}",
            "http://{metrics}/metrics",
            calls_endpoints,
            grpc_ready_check(ClientTLSConfig.from_env("CALLS", calls_env)),
        )
    )
    # Several targets become one round_robin channel (see the gateway's channel setup).
    gateway_targets = {
        f"{kind.upper()}_TARGET": addresses[0] if replicas == 1 else "ipv4:" + ",".join(addresses)
        for kind, addresses in targets.items()
    }
    gateway_targets.update(calls_target)
    for replica in range(replicas):
        port = str(int(settings["PORT"]) + replica)
        env = {**base_env, "GATEWAY_HOST": host, "PORT": port, **gateway_targets}
        name = "gateway" if replicas == 1 else f"gateway-{replica + 1}"
        services.append(
            Service(
                ChildProcess(name, _cli("gateway", "serve"), env, prefix_width=prefix_width, reports=True),
                "gateway",
                "http://{http}/livekit-webhook",
                "http://{http}/metrics",
                {"http": host_port(host, int(port))},
                gateway_ready_check(),
            )
        )
    if with_agent:
        env = {**base_env, "AGENT_HEALTH_HOST": host}
        services.append(
            Service(
                ChildProcess("agent", _cli("agent", "start"), env, prefix_width=prefix_width),
                "agent",
                settings["LIVEKIT_URL"].replace("{", "{{").replace("}", "}}"),
                "-",
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
            "a replica that dies is restarted; meanwhile the gateways use the others",
            "",
        ]
    if not is_loopback(settings["FRIDAY_UP_HOST"]):
        lines += [
            f"reachable from other machines on {settings['FRIDAY_UP_HOST']}: gRPC callers must send "
            "`authorization: Bearer <token>` (DISPATCHER_TOKEN / PERSONA_TOKEN / CALLS_TOKEN), "
            "scrapes of /metrics the METRICS_TOKEN",
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


def restart_policy(settings: dict[str, str]) -> RestartPolicy:
    try:
        return RestartPolicy(
            max_restarts=int(settings["FRIDAY_UP_MAX_RESTARTS"]),
            window_seconds=float(settings["FRIDAY_UP_RESTART_WINDOW"]),
        )
    except ValueError as exc:
        raise PlanError(f"--max-restarts / --restart-window: {exc}") from None


async def run(settings: dict[str, str], *, with_agent: bool) -> int:
    try:
        services = plan(settings, with_agent=with_agent)
        policy = restart_policy(settings)
    except PlanError as exc:
        print(f"friday up: {exc}", file=sys.stderr, flush=True)
        return 2
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    supervisor = Supervisor(
        services, policy, ready_timeout=float(settings["FRIDAY_UP_READY_TIMEOUT"]), stop_requested=stop_requested
    )
    try:
        if not await supervisor.start_all():
            return 0 if stop_requested.is_set() else 1
        print("\nfriday up: the mesh is ready\n" + describe(services, settings) + "\n", flush=True)
        return await supervisor.supervise()
    finally:
        await supervisor.stop_all()
