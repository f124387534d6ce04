"""`friday agent start|dev`: run the voice agent worker.

Everything after the mode is handed to the livekit-agents CLI unchanged, so its
flags (`--url`, `--api-key`, `--api-secret`, `--log-level`, `--drain-timeout`)
and environment variables (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
LIVEKIT_LOG_LEVEL) work as documented by LiveKit.
"""

from __future__ import annotations

import argparse
import sys

MODES = {
    "start": "run the worker in production mode",
    "dev": "run the worker in development mode (debug logs, no idle processes)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run the Friday voice agent (a livekit-agents worker)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mode", choices=sorted(MODES), help="; ".join(f"{k}: {v}" for k, v in MODES.items()))
    # REMAINDER keeps `--help` and livekit flags for the livekit-agents CLI.
    parser.add_argument("livekit_args", nargs=argparse.REMAINDER, help="passed to the livekit-agents CLI")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `friday --help` and the other subcommands never load livekit-agents.
    from livekit.agents import cli

    from agent.config import AgentConfig
    from agent.worker import build_server
    from services.common.env import ConfigError

    try:
        config = AgentConfig.from_env()
    except ConfigError as exc:
        print(f"friday agent: {exc}", file=sys.stderr)
        return 2
    server = build_server(config)
    # The livekit-agents CLI (typer) reads sys.argv: rewrite it to its own shape.
    sys.argv = ["friday agent", args.mode, *args.livekit_args]
    try:
        cli.run_app(server)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
