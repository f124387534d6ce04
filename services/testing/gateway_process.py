"""`python -m services.testing.gateway_process`: the real webhook gateway (the server
`friday gateway serve` runs, settings from the environment: README, "Webhook gateway")
as a process of its own, announcing ``READY <url>`` on stdout like the stand-in
processes (`process.standin_process` runs it with `--port 0`, a free port, and waits for
that line). For tests that must measure the gateway alone (its memory, its sockets), apart
from the test process that plays LiveKit and its attackers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys

from services.common import event_loop
from services.common.tracing import configure_logging, log_level_from_env
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from services.webhook_gateway.server import build_server


async def _serve(port: int | None) -> None:
    server_config = HttpServerConfig.from_env()
    if port is not None:
        server_config = dataclasses.replace(server_config, port=port)
    server = build_server(GatewayConfig.from_env(), server_config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY {server.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.testing.gateway_process")
    parser.add_argument("--port", type=int, help="overrides PORT; 0 picks a free port")
    args = parser.parse_args(argv)
    configure_logging(log_level_from_env())
    try:
        event_loop.run(_serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
