"""Prometheus metrics for one server, on its own CollectorRegistry (so several
servers in one test process never collide), served over HTTP (GET /metrics) by
aiohttp.web on the server's event loop — no extra thread. aiohttp's HTTP parser
bounds what a scraper may send (line and header sizes, header count) and the idle
timeout bounds how long a connection may take to send them. With a metrics token
(services.common.metrics_auth), /metrics answers only a scrape that carries it;
/health stays open for the kubelet."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.common.listen_address import is_loopback
from services.common.metrics_auth import CHALLENGE, METRICS_TOKEN_ENV, MetricsToken

_log = logging.getLogger(__name__)

# Latencies of a phone-call path: most calls are milliseconds, the tail is the ring.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


M = TypeVar("M", Counter, Gauge, Histogram)


class LabelledChildren(Generic[M]):
    """A labelled metric's children, each resolved once per tuple of label values: on a
    per-call path, `labels()` takes a lock and builds its key every time. Bounded by the
    label values a metric has, as the metric itself is."""

    __slots__ = ("_children", "_metric")
    _metric: M
    _children: dict[tuple[str, ...], M]

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class MetricSet:
    """A service's metrics, declared on one registry: the server's own, or a fresh one
    (so two services in one test process never collide). Subclasses declare theirs in
    `__init__` with `counter`, `gauge` and `histogram`; latencies default to LATENCY_BUCKETS."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(
        self, name: str, documentation: str, labels: Sequence[str] = (), *, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)


class ServerMetrics(MetricSet):
    """The runtime's own request metrics. Services add theirs to `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.requests = self.counter(
            "grpc_server_handled_total",
            "gRPC calls completed on the server, by method and status code.",
            ["grpc_method", "grpc_code"],
        )
        self.latency = self.histogram(
            "grpc_server_handling_seconds",
            "Time from receiving a gRPC call to its completion, by method.",
            ["grpc_method"],
        )


# A Prometheus scrape is one small GET with a handful of headers; anything much
# bigger is not a scraper. Oversize lines/fields or too many headers get a 400.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 64
# A connection is closed when it has not sent a complete request this long after
# connecting (or after its previous response): a slow client cannot hold it open.
IDLE_TIMEOUT_SECONDS = 5.0
# Scrapes take milliseconds; stopping the service never waits long for one.
SHUTDOWN_TIMEOUT_SECONDS = 1.0


class _ClientErrorsAtDebug(logging.LoggerAdapter[logging.Logger]):
    """aiohttp logs every malformed request (oversize line, too many headers) at
    ERROR with a traceback. That is the client's fault and an answered 400, so one
    DEBUG line; anything else (a failing handler) stays an ERROR with its traceback."""

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500:
            self.debug("metrics request rejected (%d %s): " + str(msg), exc_info.code, exc_info.message, *args)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


_server_log = _ClientErrorsAtDebug(logging.getLogger(__name__), {})


# The overall gRPC health ("") over plain HTTP. Kubernetes' native gRPC probe speaks
# plaintext only, so with TLS on the gRPC port the kubelet probes this instead.
HEALTH_PATH = "/health"


class MetricsHTTPServer:
    """Serves `generate_latest(registry)` on GET/HEAD /metrics (and /); with `serving`,
    also HEALTH_PATH: 200 while `serving()` is true, 503 once it is not (draining); 404
    elsewhere, 405 for other methods. `port` is the bound port (so port 0 works).
    With `token`, /metrics (and /) answer 401 with a Bearer challenge unless the request
    carries `Authorization: Bearer <token>`; the health path never asks for it."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        serving: Callable[[], bool] | None = None,
        token: str | None = None,
    ) -> None:
        self._registry = registry
        # Only the digest is kept: nothing of the token is in this object to leak.
        self._token = MetricsToken(token) if token is not None else None
        self._host = host
        self._port = port
        self._idle_timeout = idle_timeout
        self._serving = serving
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        addresses = self._runner.addresses if self._runner is not None else []
        if not addresses:
            raise RuntimeError("metrics server is not running")
        return int(addresses[0][1])

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)  # add_get also answers HEAD
        app.router.add_get("/", self._metrics)
        if self._serving is not None:
            app.router.add_get(HEALTH_PATH, self._health)
        runner = web.AppRunner(
            app,
            access_log=None,  # scrapes every few seconds would drown the service's own logs
            handle_signals=False,  # GrpcServer owns SIGTERM/SIGINT
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            keepalive_timeout=self._idle_timeout,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            max_headers=MAX_HEADERS,
            logger=_server_log,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self._token is None and not is_loopback(self._host):
            _log.warning("metrics on %s:%d need no token: set %s", self._host, self.port, METRICS_TOKEN_ENV)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._token is not None and not self._token.admits(request.headers.get("Authorization")):
            return web.Response(status=401, text="metrics need a bearer token\n", headers=CHALLENGE)
        # CONTENT_TYPE_LATEST carries a charset parameter, so set the header as-is
        # rather than through aiohttp's content_type= (which refuses parameters).
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        assert self._serving is not None
        if self._serving():
            return web.Response(text="SERVING\n")
        return web.Response(status=503, text="NOT_SERVING\n")
