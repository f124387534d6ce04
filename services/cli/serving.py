"""What every `friday <service> serve` does, once: read the settings (a bad one ends
the command with exit 2 and the variable's name, not a traceback), set up logging,
apply the command-line overrides, and serve until SIGTERM/SIGINT. Once listening it
reports its bound addresses to the process that launched it (`friday up`), or why
it could not listen (one line, exit 1)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from services.common.env import ConfigError
from services.common.ports import ServicePorts
from services.common.tracing import LOG_LEVELS

C = TypeVar("C")
S = TypeVar("S")


class Serving(Protocol):
    async def serve(self, on_listening: Callable[[], None] | None = None) -> None: ...

    def endpoints(self) -> dict[str, str]: ...


def add_log_level_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL", help="override LOG_LEVEL (default INFO)"
    )


def add_grpc_serve_command(
    commands: argparse._SubParsersAction,
    prefix: str,
    defaults: ServicePorts,
    *,
    help: str,
    settings: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A gRPC service's `serve`: `--port` and `--metrics-port` (read back by `server_port_overrides`),
    `--log-level`, and a description naming the two ports as `ServerConfig.from_env(prefix, defaults)`
    reads them, then the service's own `settings`. Returned for the service's own flags."""
    description = (
        f"Settings come from the environment: {prefix}_PORT ({defaults.grpc}), "
        f"{prefix}_METRICS_PORT ({defaults.metrics}, 0 = off), {settings}; flags override them."
    )
    parser: argparse.ArgumentParser = commands.add_parser("serve", help=help, description=description)
    parser.add_argument("--port", type=int, help=f"gRPC port (env {prefix}_PORT, default {defaults.grpc})")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help=f"Prometheus port, 0 = off (env {prefix}_METRICS_PORT, default {defaults.metrics})",
    )
    add_log_level_flag(parser)
    parser.set_defaults(handler=handler)
    return parser


def server_port_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ServerConfig fields `--port` and `--metrics-port` set."""
    overrides = given(port=args.port)
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port or None  # 0 switches the endpoint off
    return overrides


def given(**flags: Any) -> dict[str, Any]:
    """The flags that were given on the command line (argparse leaves the others None)."""
    return {name: value for name, value in flags.items() if value is not None}


def serve(
    command: str,
    args: argparse.Namespace,
    read_settings: Callable[[], tuple[C, S]],
    build: Callable[[C, S], Serving],
    server_overrides: Mapping[str, Any],
) -> int:
    """`server_overrides`: fields of the server config the flags set (see `given`)."""
    from services.common import event_loop
    from services.common.launch_report import LaunchReport, LaunchReporter
    from services.common.listen_address import ListenError
    from services.common.tracing import configure_logging, log_level_from_env

    try:
        reporter = LaunchReporter.from_env()
        log_level = args.log_level or log_level_from_env()
        config, server_config = read_settings()
    except ConfigError as exc:
        print(f"friday {command}: {exc}", file=sys.stderr)
        return 2
    # Every line carries trace=<id> of the call being handled.
    configure_logging(log_level)
    if server_overrides:
        server_config = dataclasses.replace(server_config, **server_overrides)  # type: ignore[type-var]
    server = build(config, server_config)
    try:
        event_loop.run(server.serve(on_listening=lambda: reporter.send(LaunchReport(server.endpoints()))))
    except ListenError as exc:
        reporter.send(LaunchReport(error=str(exc)))
        print(f"friday {command}: {exc}", file=sys.stderr)
        return 1
    return 0
