"""`friday bench`: the benchmark harness (bench/), the same as `python -m bench`.
It starts the stand-ins of `services.testing` as processes."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def register(subparsers: argparse._SubParsersAction) -> None:
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    try:
        from bench.options import add_arguments
    except ImportError:  # an install without the bench package: keep the rest of `friday` working
        add_arguments = None
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the mesh against the CRM and LiveKit stand-ins (writes bench/results/)",
        description="Starts the stand-ins and the three services, drives signed webhooks through the gateway, "
        "and writes JSON + a markdown table under bench/results/. --quick runs in seconds.",
    )
    if add_arguments is None:
        parser.set_defaults(handler=_unavailable)
        return
    add_arguments(parser)
    parser.set_defaults(handler=_run)


def _unavailable(args: argparse.Namespace) -> int:
    print("friday bench: the bench package is not installed; run `python -m bench` from a checkout")
    return 1


def _run(args: argparse.Namespace) -> int:
    from bench.cli import handle  # heavy imports only when the benchmark really runs

    return handle(args)
