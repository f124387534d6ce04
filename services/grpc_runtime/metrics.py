"""Prometheus metrics for one server, on its own CollectorRegistry (so several
servers in one test process never collide), served over a tiny asyncio HTTP
endpoint (GET /metrics) on the server's event loop — no extra thread."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

log = logging.getLogger("friday.grpc.metrics")

# Latencies of a phone-call path: most calls are milliseconds, the tail is the ring.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The runtime's own request metrics. Services add theirs to `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "grpc_server_handled_total",
            "gRPC calls completed on the server, by method and status code.",
            ["grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from receiving a gRPC call to its completion, by method.",
            ["grpc_method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class MetricsHTTPServer:
    """Serves `generate_latest(registry)` on GET /metrics (and /)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("metrics server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while True:  # drain headers; the body of a GET is empty
                line = await asyncio.wait_for(reader.readline(), timeout=5)
                if line in (b"\r\n", b"\n", b""):
                    break
            parts = request_line.decode("latin-1").split()
            if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                await self._respond(writer, b"405 Method Not Allowed", b"text/plain", b"method not allowed\n")
            elif parts[1].split("?")[0] not in ("/metrics", "/"):
                await self._respond(writer, b"404 Not Found", b"text/plain", b"not found\n")
            else:
                body = generate_latest(self._registry)
                await self._respond(
                    writer, b"200 OK", CONTENT_TYPE_LATEST.encode(), b"" if parts[0] == "HEAD" else body
                )
        except (TimeoutError, ConnectionError) as exc:
            log.debug("metrics request dropped: %s", exc)
        finally:
            writer.close()

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: bytes, content_type: bytes, body: bytes) -> None:
        head = (
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + content_type
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        writer.write(head + body)
        await writer.drain()
