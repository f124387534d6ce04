"""The `friday` command. Each subcommand lives in its own module under
services/cli/ and exposes `register(subparsers)`; add it to COMMAND_MODULES."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from services.common import grpc_polling

# Subcommand modules, in the order `friday --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "persona",
    "gateway",
    "up",
    "agent",
    "dispatcher",
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
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
