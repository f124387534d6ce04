"""A bare grpc.aio server with nothing but grpc.health.v1 (scenarios 6 and 7p): no
interceptors, no metrics, no reflection, on the services' event loop and gRPC engine.
Its Check rate is the most a Python gRPC server can answer on this machine, the
ceiling GetPersona is compared with; one sequential Check is the bare gRPC hop the
mesh's latency and CPU targets allow for twice.

    python -m bench.bare_health --port 0     # prints READY 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import event_loop


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
    # As PersonaService and DispatcherService run theirs: the comparison is with the runtime's own cost.
    event_loop.run(serve(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
