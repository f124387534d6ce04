"""`friday gateway serve`: the LiveKit webhook gateway on uvicorn."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from services.common.env import ConfigError
from services.common.tracing import LOG_LEVELS, configure_logging, log_level_from_env


def register(subparsers: argparse._SubParsersAction) -> None:
    gateway = subparsers.add_parser("gateway", help="LiveKit webhook gateway (HTTP in, gRPC out)")
    commands = gateway.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve POST /livekit-webhook, /health, /ready, /metrics",
        description="Settings come from the environment (PORT, PERSONA_TARGET, DISPATCHER_TARGET, "
        "LIVEKIT_WEBHOOK_API_KEY/SECRET or LIVEKIT_API_KEY/SECRET, DISPATCHER_TOKEN, AGENT_TO_DISPATCH, "
        "GATEWAY_BUDGET_SECONDS, REDIS_URL, LOG_LEVEL, ...: see the README); flags override them.",
    )
    serve.add_argument("--port", type=int, help="HTTP port (env PORT, default 8080)")
    serve.add_argument("--persona-target", help="PersonaService host:port (env PERSONA_TARGET)")
    serve.add_argument("--dispatcher-target", help="DispatcherService host:port (env DISPATCHER_TARGET)")
    serve.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL", help="override LOG_LEVEL (default INFO)"
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from services.common import event_loop
    from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
    from services.webhook_gateway.server import build_server

    try:
        log_level = args.log_level or log_level_from_env()
        config = GatewayConfig.from_env()
        server_config = HttpServerConfig.from_env()
    except ConfigError as exc:
        print(f"friday gateway serve: {exc}", file=sys.stderr)
        return 2
    targets = {"persona_target": args.persona_target, "dispatcher_target": args.dispatcher_target}
    config = dataclasses.replace(config, **{k: v for k, v in targets.items() if v is not None})
    if args.port is not None:
        server_config = dataclasses.replace(server_config, port=args.port)
    configure_logging(log_level)
    event_loop.run(build_server(config, server_config).serve())
    return 0
