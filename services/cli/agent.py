"""`friday agent start|dev`: run the voice agent worker.

Everything after the mode is handed to the livekit-agents CLI unchanged, so its
flags (`--url`, `--api-key`, `--api-secret`, `--log-level`, `--drain-timeout`)
and environment variables (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
LIVEKIT_LOG_LEVEL) work as documented by LiveKit.

Before handing over, the speech stack is checked against the credentials present
(`agent.config.require_usable_stack`): a stack that cannot work here — LiveKit
Inference with a self-hosted LIVEKIT_URL, openai without OPENAI_API_KEY — stops
the command with exit code 2 and a message naming FRIDAY_SPEECH_STACK and what each
stack needs, instead of a worker that fails at its first caller's first word.
"""

from __future__ import annotations

import argparse
import os
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
        # argparse shows a REMAINDER argument as a bare "...": name what goes there.
        usage="%(prog)s [-h] {" + ",".join(sorted(MODES)) + "} [LIVEKIT_ARGS ...]",
        epilog="`friday agent dev --help` lists the livekit-agents flags LIVEKIT_ARGS may hold.",
    )
    # Optional to argparse only so that a missing mode is reported alone (as required, it is
    # reported together with the REMAINDER, which never is): `run` refuses it with exit 2.
    parser.add_argument("mode", nargs="?", choices=sorted(MODES), help="; ".join(f"{k}: {v}" for k, v in MODES.items()))
    # REMAINDER keeps `--help` and livekit flags for the livekit-agents CLI.
    parser.add_argument(
        "livekit_args",
        nargs=argparse.REMAINDER,
        metavar="LIVEKIT_ARGS",
        help="handed to the livekit-agents CLI's own `start`/`dev` command unchanged, e.g. --url, --api-key, "
        "--api-secret, --log-level, --drain-timeout",
    )
    parser.set_defaults(handler=run, agent_usage=parser.format_usage())


def run(args: argparse.Namespace) -> int:
    if args.mode is None:
        print(f"{args.agent_usage}friday agent: error: say which mode: start or dev", file=sys.stderr)
        return 2
    from agent.config import LIVEKIT_URL_ENV, AgentConfig, require_usable_stack
    from services.common.env import ConfigError

    # Checked before livekit-agents is even imported, so a worker that could only fail
    # at its first caller's first word stops within a second, saying why.
    asking_for_help = any(arg in ("--help", "-h") for arg in args.livekit_args)
    environ = dict(os.environ)
    if (url := _url_flag(args.livekit_args)) is not None:
        environ[LIVEKIT_URL_ENV] = url  # the livekit CLI's --url wins over LIVEKIT_URL
    try:
        config = AgentConfig.from_env(environ)
        if not asking_for_help:
            require_usable_stack(config, environ)
    except ConfigError as exc:
        print(f"friday agent: {exc}", file=sys.stderr)
        return 2

    # Imported here so `friday --help` and the other subcommands never load livekit-agents.
    from livekit.agents import cli

    from agent.worker import build_server

    server = build_server(config)
    # The livekit-agents CLI (typer) reads sys.argv: rewrite it to its own shape.
    sys.argv = ["friday agent", args.mode, *args.livekit_args]
    try:
        cli.run_app(server)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _url_flag(livekit_args: list[str]) -> str | None:
    """The value of the livekit CLI's `--url` flag (`--url X` or `--url=X`), if given."""
    for index, arg in enumerate(livekit_args):
        if arg == "--url" and index + 1 < len(livekit_args):
            return livekit_args[index + 1]
        if arg.startswith("--url="):
            return arg.removeprefix("--url=")
    return None
