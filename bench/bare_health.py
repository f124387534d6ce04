"""A bare grpc.aio server with nothing but grpc.health.v1 (scenario 6): no
interceptors, no metrics, no reflection. Its Check RPS is the most a Python gRPC
server can answer on this machine, the ceiling GetPersona is compared with.

    python -m bench.bare_health --port 0     # prints READY 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def serve(port: int) -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"READY 127.0.0.1:{bound}", flush=True)
    await stop.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_health", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
