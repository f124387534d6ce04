"""Every `friday up` setting, with its flag, its environment variable and its
default. The same table builds the argument parser, the children's
environments, and the help text, so the three cannot drift apart."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

from services.common import ports
from services.common.env import Environment
from services.common.listen_address import LOOPBACK_HOST
from services.common.livekit_names import AGENT_NAME_ENV, DEFAULT_AGENT_NAME
from services.common.metrics_auth import METRICS_TOKEN_ENV


@dataclass(frozen=True)
class Setting:
    flag: str
    env: str
    default: str
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _port_settings(prefix: str, service: str, defaults: ports.ServicePorts) -> tuple[Setting, Setting]:
    """A gRPC service's two ports, named as its server reads them (`ServerConfig.from_env(prefix, ...)`)."""
    flag, metrics_help = "--" + prefix.lower(), f"{service} Prometheus port (0 = off)"
    return (
        Setting(f"{flag}-port", f"{prefix}_PORT", str(defaults.grpc), f"{service} gRPC port"),
        Setting(f"{flag}-metrics-port", f"{prefix}_METRICS_PORT", str(defaults.metrics), metrics_help),
    )


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "--host",
        "FRIDAY_UP_HOST",
        LOOPBACK_HOST,
        "address every service binds (gRPC, gateway HTTP, metrics, agent health); anything but loopback "
        "needs --dispatcher-token, --persona-token, --calls-token, --metrics-token and a LiveKit secret of your own",
    ),
    *_port_settings("PERSONA", "PersonaService", ports.PERSONA),
    *_port_settings("DISPATCHER", "DispatcherService", ports.DISPATCHER),
    *_port_settings("CALLS", "CallHistoryService", ports.CALLS),
    Setting(
        "--calls-database-url",
        "CALLS_DATABASE_URL",
        "",
        "call history database (postgresql://… or sqlite:///…, :memory: keeps nothing); unset = an SQLite file "
        "under the user's data directory",
    ),
    Setting("--gateway-port", "PORT", str(ports.GATEWAY_HTTP), "webhook gateway HTTP port"),
    Setting("--persona-api-base", "PERSONA_API_BASE", "", "CRM base URL; unset = persona file"),
    Setting("--persona-file", "PERSONA_FILE", "", "persona JSON file; unset = the example file shipped in the package"),
    Setting("--redis-url", "REDIS_URL", "", "Redis for shared cache, claims and dedupe; unset = in-process"),
    Setting("--livekit-url", "LIVEKIT_URL", "http://localhost:7880", "LiveKit server URL (dispatcher, agent)"),
    Setting("--livekit-api-key", "LIVEKIT_API_KEY", "devkey", "LiveKit API key (dispatcher; gateway verifies with it)"),
    Setting("--livekit-api-secret", "LIVEKIT_API_SECRET", "secret", "LiveKit API secret"),
    Setting("--agent-name", AGENT_NAME_ENV, DEFAULT_AGENT_NAME, "agent name to dispatch / register"),
    Setting("--dispatcher-token", "DISPATCHER_TOKEN", "", "bearer token the dispatcher requires; unset = open"),
    Setting("--persona-token", "PERSONA_TOKEN", "", "bearer token PersonaService requires; unset = open"),
    Setting("--calls-token", "CALLS_TOKEN", "", "bearer token CallHistoryService requires; unset = open"),
    Setting(
        "--metrics-token",
        METRICS_TOKEN_ENV,
        "",
        "bearer token every /metrics endpoint requires (gRPC services' and the gateway's); unset = open",
    ),
    Setting(
        "--persona-admin-token",
        "PERSONA_ADMIN_TOKEN",
        "",
        "bearer token InvalidatePersona requires instead of --persona-token; unset = the persona token",
    ),
    Setting("--budget-seconds", "GATEWAY_BUDGET_SECONDS", "3", "gateway's total time per webhook"),
    Setting("--log-level", "LOG_LEVEL", "INFO", "log level of every service"),
    Setting("--ready-timeout", "FRIDAY_UP_READY_TIMEOUT", "60", "seconds to wait for every service to be ready"),
    Setting("--replicas", "FRIDAY_UP_REPLICAS", "1", "replicas of each service (ports count up from the base ports)"),
    Setting(
        "--max-restarts",
        "FRIDAY_UP_MAX_RESTARTS",
        "5",
        "restarts of one crashed service within --restart-window before the mesh gives up (0 = never restart)",
    ),
    Setting("--restart-window", "FRIDAY_UP_RESTART_WINDOW", "60", "seconds over which a service's crashes count"),
)


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    env = Environment(environ)
    for setting in SETTINGS:
        parser.add_argument(
            setting.flag,
            default=env.text(setting.env, setting.default),
            help=f"{setting.help} (env {setting.env}, default {setting.default or 'unset'})",
        )
    parser.add_argument(
        "--with-agent",
        action="store_true",
        default=None,  # unset: FRIDAY_UP_WITH_AGENT decides (with_agent below)
        help="also start the agent worker (env FRIDAY_UP_WITH_AGENT)",
    )


def with_agent(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> bool:
    """--with-agent, else FRIDAY_UP_WITH_AGENT (read here, not in the parser, so a bad value
    stops `friday up` with a message rather than every `friday` command)."""
    return args.with_agent or Environment(environ).flag("FRIDAY_UP_WITH_AGENT", False)


def values(args: argparse.Namespace) -> dict[str, str]:
    """Setting env name -> value chosen for this run."""
    return {setting.env: str(getattr(args, setting.dest)) for setting in SETTINGS}
