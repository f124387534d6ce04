"""GrpcServer: a grpc.aio server with health, reflection, access log, metrics,
optional auth and TLS, and graceful shutdown — the one place that knows how a
Friday service is hosted. See the package docstring for how a service plugs in."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from services.common.listen_address import bind_failure, host_port, is_loopback
from services.grpc_runtime.config import ServerConfig
from services.grpc_runtime.decoding import EncodedBehaviour, add_decoding_servicer
from services.grpc_runtime.health import HealthReporter
from services.grpc_runtime.interceptors import BearerTokenAuthInterceptor, ObservingInterceptor
from services.grpc_runtime.metrics import MetricsHTTPServer, ServerMetrics

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # Close each client connection after ~5 minutes (then a 30 s grace for in-flight calls).
    # Clients re-resolve their target on reconnect, so a gateway behind a headless Service
    # (dns:///...) starts using new replicas after a scale-up instead of never seeing them.
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
    # grpc sets SO_REUSEPORT by default, so a second process (another `friday up`, a second
    # replica started by hand) could bind the same port and silently take half the calls
    # with state of its own: two in-process dispatchers behind one port break exactly-once.
    ("grpc.so_reuseport", 0),
)


@dataclass(frozen=True)
class ServiceSpec:
    """One servicer to host and the descriptor of the service it implements (methods,
    full name for health and reflection). `admin_methods` names the methods (as in the
    proto) that require `ServerConfig.admin_token` when one is configured.
    `encoded_methods` serves the unary methods it names by the behaviour given, which
    answers with the response already serialized (`decoding.EncodedBehaviour`)."""

    servicer: Any
    descriptor: ServiceDescriptor
    admin_methods: frozenset[str] = field(default_factory=frozenset)
    encoded_methods: Mapping[str, EncodedBehaviour] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = (set(self.admin_methods) | set(self.encoded_methods)) - set(self.descriptor.methods_by_name)
        if unknown:
            raise ValueError(f"{self.full_name} has no method {', '.join(sorted(unknown))}")

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name

    @property
    def admin_method_paths(self) -> frozenset[str]:
        """The admin methods as they arrive on the wire: `/<package>.<Service>/<Method>`."""
        return frozenset(f"/{self.full_name}/{name}" for name in self.admin_methods)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        add_decoding_servicer(self.servicer, self.descriptor, server, self.encoded_methods)

    @classmethod
    def of(
        cls,
        servicer: Any,
        pb2: ModuleType,
        service: str,
        *,
        admin_methods: Sequence[str] = (),
        encoded_methods: Mapping[str, EncodedBehaviour] | None = None,
    ) -> ServiceSpec:
        """`ServiceSpec.of(MyServicer(), persona_service_pb2, "PersonaService")`: the service's
        descriptor is all the runtime needs (requests are decoded by
        `decoding.add_decoding_servicer`, so undecodable bytes get INVALID_ARGUMENT)."""
        return cls(
            servicer=servicer,
            descriptor=pb2.DESCRIPTOR.services_by_name[service],
            admin_methods=frozenset(admin_methods),
            encoded_methods=dict(encoded_methods or {}),
        )


class GenericHandlersOnly:
    """Passes the generated `add_XServicer_to_server` functions' generic handlers to
    `server` and drops their registered ones.

    grpc.aio's serving loop keeps one pending request per registered method (plus one
    for all generic ones) and, for every call that arrives, waits on all of them with
    `asyncio.wait`, which adds and removes a callback on each: every registered method
    costs every call of every method. The generic handlers resolve the same methods
    (the generated code registers each handler both ways), so without registered
    methods the loop waits on one request per call."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        del service, handlers  # served by the generic handler added beside them


class GrpcServer:
    """Lifecycle: `await start()` → `port`/`metrics_port` valid → `await stop()`.
    `serve()` adds SIGTERM/SIGINT handling for the CLI."""

    def __init__(
        self,
        config: ServerConfig,
        services: Sequence[ServiceSpec] = (),
        *,
        registry: CollectorRegistry | None = None,
        name: str = "friday",
    ) -> None:
        self.config = config
        self.name = name
        self.metrics = ServerMetrics(registry)
        self.health = HealthReporter()
        self._services: list[ServiceSpec] = list(services)
        self._on_startup: list[Hook] = []
        self._on_shutdown: list[Hook] = []
        self._server: grpc.aio.Server | None = None
        self._metrics_http: MetricsHTTPServer | None = None
        self._port: int | None = None
        self._stopped = asyncio.Event()
        for spec in self._services:
            self.health.register_service(spec.full_name)

    @property
    def registry(self) -> CollectorRegistry:
        """Register service metrics here (per server, never the global registry)."""
        return self.metrics.registry

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_http.port if self._metrics_http is not None else None

    def endpoints(self) -> dict[str, str]:
        """What this server bound, by role: `grpc` and (when on) `metrics`, as host:port."""
        bound = {"grpc": host_port(self.config.host, self.port)}
        if self.metrics_port is not None:
            bound["metrics"] = host_port(self.config.metrics_host, self.metrics_port)
        return bound

    @property
    def address(self) -> str:
        """A dialable host:port for clients (tests)."""
        host = self.config.host
        if host in ("[::]", "0.0.0.0", "::", ""):
            host = "localhost"
        return f"{host}:{self.port}"

    def add_service(self, spec: ServiceSpec) -> None:
        if self._server is not None:
            raise RuntimeError("add services before start()")
        self._services.append(spec)
        self.health.register_service(spec.full_name)

    def on_startup(self, hook: Hook) -> None:
        """Run before the port opens (open pools, warm caches)."""
        self._on_startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run after in-flight calls finished (close pools)."""
        self._on_shutdown.append(hook)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        admin_methods: frozenset[str] = frozenset().union(*(spec.admin_method_paths for spec in self._services))
        if self.config.admin_token and not admin_methods:
            raise ValueError(f"{self.name}: an admin token is configured but no service has admin methods")
        for hook in self._on_startup:
            await hook()
        interceptors: list[grpc.aio.ServerInterceptor] = [ObservingInterceptor(self.metrics)]
        if self.config.auth_token or self.config.admin_token:
            interceptors.append(
                BearerTokenAuthInterceptor(
                    self.config.auth_token or None,
                    admin_token=self.config.admin_token or None,
                    admin_methods=admin_methods,
                )
            )
        server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
        for spec in self._services:
            spec.add_to_server(server)
        # Typed as a server for the generated functions, which call only the two methods it has.
        generic_only = cast(grpc.aio.Server, GenericHandlersOnly(server))
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, generic_only)
        names = [spec.full_name for spec in self._services]
        names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        # What reflection.enable_server_reflection does for an aio server, through the same filter.
        reflecting = reflection.aio.ReflectionServicer(names)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflecting, generic_only)

        bind = host_port(self.config.host, self.config.port)
        try:
            if self.config.tls is not None:
                self._port = server.add_secure_port(bind, _server_credentials(self.config))
            else:
                self._port = server.add_insecure_port(bind)
        except RuntimeError:  # grpc's "Failed to bind to address", with no reason
            self._port = 0
        if not self._port:
            raise bind_failure(f"{self.name} gRPC", self.config.host, self.config.port)
        await server.start()
        self._server = server
        await self.health.start()
        if self.config.metrics_port is not None:
            metrics_http = MetricsHTTPServer(
                self.registry,
                self.config.metrics_host,
                self.config.metrics_port,
                serving=lambda: self.health.serving,
                token=self.config.metrics_token,
            )
            try:
                await metrics_http.start()
            except OSError:
                await self.stop(grace=0)
                raise bind_failure(f"{self.name} metrics", self.config.metrics_host, self.config.metrics_port) from None
            self._metrics_http = metrics_http
        mutual_tls = self.config.tls is not None and self.config.tls.mutual
        if not self.config.auth_token and not mutual_tls and not is_loopback(self.config.host):
            logger.warning("%s listens on %s with no token: anyone who can reach it can call it", self.name, bind)
        logger.info(
            "%s listening on %s:%d (tls=%s, mtls=%s, auth=%s, admin auth=%s, metrics=%s)",
            self.name,
            self.config.host,
            self._port,
            self.config.tls is not None,
            bool(self.config.tls and self.config.tls.mutual),
            bool(self.config.auth_token),
            bool(self.config.admin_token),
            self.metrics_port,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Health → NOT_SERVING, then `server.stop(grace)` (in-flight calls finish), then
        shutdown hooks. Safe to call twice."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self.health.enter_shutdown()
        await server.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        if self._metrics_http is not None:
            await self._metrics_http.stop()
            self._metrics_http = None
        for hook in reversed(self._on_shutdown):
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook failed")
        self._stopped.set()
        logger.info("%s stopped", self.name)

    async def serve(self, on_listening: Callable[[], None] | None = None) -> None:
        """Start, then run until SIGTERM/SIGINT, then stop gracefully. `on_listening` runs
        once every port is bound (the CLI reports `endpoints()` to its launcher there)."""
        await self.start()
        if on_listening is not None:
            on_listening()
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop_requested.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread / not Unix
                pass
        try:
            waiter = asyncio.create_task(stop_requested.wait())
            stopped = asyncio.create_task(self._stopped.wait())
            await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopped.cancel()
            if stop_requested.is_set():
                logger.info(
                    "%s: signal received, draining for up to %.1fs", self.name, self.config.shutdown_grace_seconds
                )
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(grace=0)


def _server_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    tls = config.tls
    assert tls is not None
    key = Path(tls.key_file).read_bytes()
    cert = Path(tls.cert_file).read_bytes()
    ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
