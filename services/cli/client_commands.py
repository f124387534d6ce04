"""What the `friday calls` and `friday dispatcher` client commands share: the
`--target` / `--timeout` flags, the help text on connection settings, and a command
body that runs against a client made from the environment and the flags, a failed call
reported the one way `call_errors` describes.

Service code is imported where a command runs, not here, so `friday --help` stays fast:
the helpers take the client's environment prefix and default target as plain strings,
and the client class only when the command runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from services.common.env import Environment

if TYPE_CHECKING:
    from services.grpc_runtime.client import ServiceClient

Client = TypeVar("Client", bound="ServiceClient")

DEFAULT_TIMEOUT_SECONDS = 5.0


def connection_help(prefix: str, default_target: str) -> str:
    return (
        f"Connection settings come from the environment: {prefix}_TARGET ({default_target}), {prefix}_TOKEN, "
        f"{prefix}_TLS_CA_FILE/_CLIENT_CERT_FILE/_CLIENT_KEY_FILE/_SERVER_NAME; flags override them."
    )


def add_client_flags(parser: argparse.ArgumentParser, prefix: str, default_target: str) -> None:
    parser.add_argument("--target", help=f"host:port (env {prefix}_TARGET, default {default_target})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"deadline in seconds (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )


def with_client(
    args: argparse.Namespace, client_type: type[Client], action: Callable[[Client], Awaitable[int]], *, service: str
) -> int:
    """Runs `action` with a `client_type` from the environment and the flags; a failed call
    prints what was tried and why (exit 1)."""
    from services.cli.call_errors import describe
    from services.grpc_runtime.client import ServiceCallError

    prefix = client_type.env_prefix
    target = args.target or Environment().text(f"{prefix}_TARGET", client_type.default_target)

    async def run() -> int:
        async with client_type.from_env(target=target, default_timeout=args.timeout) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except ServiceCallError as exc:
        failure = describe(
            exc.code,
            exc.message,
            exc.reason,
            None,
            service=service,
            target=target,
            target_setting=f"--target / {prefix}_TARGET",
            timeout=args.timeout,
        )
        print(failure.as_text(), file=sys.stderr)
        return 1
