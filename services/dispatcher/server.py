"""Assembles DispatcherService on the shared gRPC runtime: LiveKit transport, claim
store, metrics on the server's registry, LiveKit/Redis health, shutdown hooks."""

from __future__ import annotations

from collections.abc import Mapping

from friday.dispatcher.v1 import dispatcher_service_pb2
from services.common import ports, secrets_check
from services.common.leases import InMemoryLeases, RedisLeases, TokenLeases
from services.dispatcher.call_history import GrpcCallHistoryReports
from services.dispatcher.claims import CallClaims, claim_store_for
from services.dispatcher.config import DispatcherConfig
from services.dispatcher.dispatcher import Dispatcher
from services.dispatcher.livekit_transport import LiveKitDispatchTransport
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.servicer import DispatcherServicer
from services.dispatcher.transport import DispatchTransport
from services.grpc_runtime import GrpcServer, ServerConfig, ServiceSpec

SERVICE_FULL_NAME = dispatcher_service_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name
REDIS_PROBE_INTERVAL_SECONDS = 10.0


def server_config_from_env(environ: Mapping[str, str] | None = None) -> ServerConfig:
    """DISPATCHER_PORT, DISPATCHER_METRICS_PORT, DISPATCHER_TLS_*, DISPATCHER_TOKEN, ..."""
    return ServerConfig.from_env("DISPATCHER", ports.DISPATCHER, environ=environ)


def build_server(
    config: DispatcherConfig,
    server_config: ServerConfig,
    *,
    transport: DispatchTransport | None = None,
    claims: TokenLeases | None = None,
) -> GrpcServer:
    """A ready-to-start server. `transport`/`claims` default to LiveKit over HTTP and the
    claim store chosen by `config.claims.redis_url`."""
    server = GrpcServer(server_config, name="dispatcher")
    metrics = DispatcherMetrics(server.registry)
    if transport is None:
        lk = config.livekit
        secrets_check.check_secret("LIVEKIT_API_SECRET", lk.api_secret)
        transport = LiveKitDispatchTransport(lk.url, lk.api_key, lk.api_secret)
    if claims is None:
        claims = claim_store_for(config.claims.redis_url, config.claims.key_prefix, timeout=config.claims.redis_timeout)
    # While Redis is unreachable, calls are claimed in this process (degraded) unless
    # the operator chose to refuse them instead (DISPATCHER_DEGRADED_CLAIMS=false).
    fallback = InMemoryLeases() if config.claims.degraded_fallback else None
    dispatcher = Dispatcher(
        transport,
        CallClaims(claims, metrics, fallback=fallback),
        config,
        metrics,
        report_livekit_health=server.health.reporter(SERVICE_FULL_NAME, "livekit"),
        call_history=GrpcCallHistoryReports.connect(config.calls),
    )
    if isinstance(claims, RedisLeases):
        server.health.add_probe(SERVICE_FULL_NAME, "redis", claims.ping, REDIS_PROBE_INTERVAL_SECONDS)
    server.add_service(
        ServiceSpec.of(
            DispatcherServicer(dispatcher, metrics, config.max_budget_seconds),
            dispatcher_service_pb2,
            "DispatcherService",
        )
    )
    server.on_shutdown(dispatcher.aclose)
    return server
