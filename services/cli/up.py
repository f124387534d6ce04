"""`friday up`: PersonaService, DispatcherService and the gateway in one command."""

from __future__ import annotations

import argparse
import asyncio


def register(subparsers: argparse._SubParsersAction) -> None:
    from services.launcher import settings

    up = subparsers.add_parser(
        "up",
        help="run the whole mesh locally (one process per service)",
        description="Starts PersonaService, DispatcherService and the webhook gateway with embedded defaults, "
        "waits until each is ready, prints where they run and streams their logs. Ctrl-C stops them all.",
    )
    settings.add_arguments(up)
    up.set_defaults(handler=_up)


def _up(args: argparse.Namespace) -> int:
    import sys

    from services.common.env import ConfigError
    from services.launcher import settings
    from services.launcher.up import run

    try:
        with_agent = settings.with_agent(args)
    except ConfigError as exc:
        print(f"friday up: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings.values(args), with_agent=with_agent))
