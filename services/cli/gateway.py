"""`friday gateway serve`: the LiveKit webhook gateway on uvicorn."""

from __future__ import annotations

import argparse
import dataclasses

from services.cli.serving import add_log_level_flag, given, serve
from services.common import ports


def register(subparsers: argparse._SubParsersAction) -> None:
    gateway = subparsers.add_parser("gateway", help="LiveKit webhook gateway (HTTP in, gRPC out)")
    commands = gateway.add_subparsers(dest="gateway_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve POST /livekit-webhook, /health, /ready, /metrics",
        description="Settings come from the environment (PORT, PERSONA_TARGET, DISPATCHER_TARGET, "
        "LIVEKIT_WEBHOOK_API_KEY/SECRET or LIVEKIT_API_KEY/SECRET, DISPATCHER_TOKEN, METRICS_TOKEN, AGENT_TO_DISPATCH, "
        "GATEWAY_BUDGET_SECONDS, REDIS_URL, LOG_LEVEL, ...: see the README); flags override them.",
    )
    serve.add_argument("--port", type=int, help=f"HTTP port (env PORT, default {ports.GATEWAY_HTTP})")
    serve.add_argument("--persona-target", help="PersonaService host:port (env PERSONA_TARGET)")
    serve.add_argument("--dispatcher-target", help="DispatcherService host:port (env DISPATCHER_TARGET)")
    add_log_level_flag(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
    from services.webhook_gateway.server import build_server

    def read_settings() -> tuple[GatewayConfig, HttpServerConfig]:
        targets = given(persona_target=args.persona_target, dispatcher_target=args.dispatcher_target)
        return dataclasses.replace(GatewayConfig.from_env(), **targets), HttpServerConfig.from_env()

    return serve("gateway serve", args, read_settings, build_server, given(port=args.port))
