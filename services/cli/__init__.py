"""The `friday` command. Each subcommand lives in its own module under
services/cli/ and exposes `register(subparsers)`; add it to COMMAND_MODULES."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from services.common import grpc_polling, secrets_check

# Subcommand modules, in the order `friday --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "persona",
    "gateway",
    "up",
    "agent",
    "dispatcher",
    "calls",
    "simulate_call",
    "bench",
    "chaos",
)


def _version() -> str:
    try:
        return version("friday-persona-mesh")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="friday",
        description="Friday persona mesh: the right persona for every inbound LiveKit call.",
    )
    parser.add_argument("--version", action="version", version=f"friday {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"services.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before any subcommand imports grpc, and inherited by every process `friday up` starts.
    grpc_polling.prefer_legacy_epoll()
    secrets_check.quiet_pyjwt_key_length_warnings()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            # No command is a usage error (exit 2, as argparse's own), not a success.
            parser.print_help(sys.stderr)
            return 2
        return int(handler(args) or 0)
    except BrokenPipeError:
        # `friday persona get … | head -5`: the reader left; exit quietly as Unix tools do.
        _silence_stdout()
        return 141  # 128 + SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
