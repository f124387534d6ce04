"""Client side: one way to build a grpc.aio channel to a Friday service —
insecure or TLS/mTLS from files, a service config with an optional retry policy,
and an optional bearer token / trace id added to every call."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.tracing import TRACE_ID_METADATA_KEY
from services.grpc_runtime.call_metadata import bearer_metadata, safe_trace_id
from services.grpc_runtime.config import ClientTLSConfig, RetryPolicy

DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.primary_user_agent", "friday-persona-mesh"),
    # Reconnect quickly after a server restart: calls happen inside a phone ring.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


def service_config(services: Sequence[str], retry: RetryPolicy | None) -> dict[str, Any]:
    """A gRPC service config applying `retry` to every method of `services`."""
    method_config: dict[str, Any] = {"name": [{"service": name} for name in services]}
    if retry is not None:
        method_config["retryPolicy"] = {
            "maxAttempts": retry.max_attempts,
            "initialBackoff": f"{retry.initial_backoff_seconds}s",
            "maxBackoff": f"{retry.max_backoff_seconds}s",
            "backoffMultiplier": retry.backoff_multiplier,
            "retryableStatusCodes": list(retry.retryable_status_codes),
        }
    return {"methodConfig": [method_config]}


class _MetadataInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Adds fixed metadata (bearer token) and the current trace id to every call."""

    def __init__(self, fixed: Sequence[tuple[str, str]], trace_id: Callable[[], str] | None) -> None:
        self._fixed = tuple(fixed)
        self._trace_id = trace_id

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in self._fixed:
            if key not in metadata:
                metadata.add(key, value)
        trace_id = self._trace_id() if self._trace_id else ""
        if trace_id and TRACE_ID_METADATA_KEY not in metadata:
            metadata.add(TRACE_ID_METADATA_KEY, safe_trace_id(trace_id))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


def create_channel(
    target: str,
    *,
    tls: ClientTLSConfig | None = None,
    services: Sequence[str] = (),
    retry: RetryPolicy | None = None,
    bearer_token: str | None = None,
    trace_id: Callable[[], str] | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """Build a channel. `services` (full names) get `retry` through the service config;
    `bearer_token` is sent as `authorization: Bearer …`; `trace_id()` is called per call
    (e.g. `services.grpc_runtime.current_trace_id` to forward the incoming trace)."""
    opts: list[tuple[str, Any]] = list(DEFAULT_CHANNEL_OPTIONS)
    if services:
        opts.append(("grpc.service_config", json.dumps(service_config(services, retry))))
        opts.append(("grpc.enable_retries", 1 if retry is not None else 0))
    if tls is not None and tls.server_name_override:
        opts.append(("grpc.ssl_target_name_override", tls.server_name_override))
    opts.extend(options)
    fixed = bearer_metadata(bearer_token)
    interceptors = [_MetadataInterceptor(fixed, trace_id)] if fixed or trace_id else None
    if tls is None:
        return grpc.aio.insecure_channel(target, options=opts, interceptors=interceptors)
    return grpc.aio.secure_channel(target, channel_credentials(tls), options=opts, interceptors=interceptors)


def channel_credentials(tls: ClientTLSConfig) -> grpc.ChannelCredentials:
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ValueError("client cert_file and key_file must be given together")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca_file).read_bytes() if tls.ca_file else None,
        private_key=Path(tls.key_file).read_bytes() if tls.key_file else None,
        certificate_chain=Path(tls.cert_file).read_bytes() if tls.cert_file else None,
    )


async def is_serving(channel: grpc.aio.Channel, timeout: float, service: str = "") -> bool:
    """grpc.health.v1 status of `service` ("" = the whole server) behind `channel`."""
    try:
        # types-grpcio-health-checking declares HealthStub without its methods.
        response = await health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    except grpc.aio.AioRpcError:
        return False
    return response.status == health_pb2.HealthCheckResponse.SERVING
