"""Assembles CallHistoryService on the shared gRPC runtime: the store (migrated at
start-up), the domain service and its sweep, metrics on the server's registry, a
database health probe, shutdown hooks."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from friday.calls.v1 import call_history_service_pb2
from services.calls.config import CallsConfig
from services.calls.history import CallHistory, wall_clock_ms
from services.calls.metrics import CallsMetrics
from services.calls.outbox import OutboxDeliverer
from services.calls.servicer import CallHistoryServicer
from services.calls.store import CallStore, SqlCallStore
from services.common import ports
from services.grpc_runtime import GrpcServer, ServerConfig, ServiceSpec

SERVICE_FULL_NAME = call_history_service_pb2.DESCRIPTOR.services_by_name["CallHistoryService"].full_name
DATABASE_PROBE_INTERVAL_SECONDS = 10.0


def server_config_from_env(environ: Mapping[str, str] | None = None) -> ServerConfig:
    """CALLS_PORT, CALLS_METRICS_PORT, CALLS_TLS_*, CALLS_TOKEN, ..."""
    return ServerConfig.from_env("CALLS", ports.CALLS, environ=environ)


def build_server(
    config: CallsConfig,
    server_config: ServerConfig,
    *,
    store: CallStore | None = None,
    events_transport: httpx.AsyncBaseTransport | None = None,
) -> GrpcServer:
    """A ready-to-start server; the database is migrated when it starts. With CALL_EVENTS_URL
    the outbox's deliverer runs beside it (shutdown order: deliverer, then the store)."""
    server = GrpcServer(server_config, name="calls")
    metrics = CallsMetrics(server.registry)
    if store is None:
        store = SqlCallStore(config.store, clock_ms=wall_clock_ms)
    history = CallHistory(store, config, metrics, call_events=config.events.url is not None)
    server.health.add_probe(SERVICE_FULL_NAME, "database", history.ping, DATABASE_PROBE_INTERVAL_SECONDS)
    server.add_service(
        ServiceSpec.of(
            CallHistoryServicer(history, config.max_page_size),
            call_history_service_pb2,
            "CallHistoryService",
        )
    )
    server.on_startup(history.start)
    server.on_shutdown(history.stop)  # hooks run in reverse: the deliverer stops before the store closes
    if config.events.url is not None and isinstance(store, SqlCallStore):
        deliverer = OutboxDeliverer(store, config.events, wall_clock_ms, transport=events_transport)
        server.on_startup(deliverer.start)
        server.on_shutdown(deliverer.stop)
    return server
