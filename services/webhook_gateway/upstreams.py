"""The gateway's gRPC edge: PersonaService and DispatcherService behind the
small interfaces CallFlow needs, plus their health for `/ready`.

Each call carries its own deadline (Python does not propagate them) and the
call's trace id as metadata.
"""

from __future__ import annotations

import json

import grpc

from friday.dispatcher.v1 import dispatcher_service_pb2_grpc
from friday.dispatcher.v1.dispatcher_service_pb2 import DispatchAgentRequest, DispatchAgentResponse
from friday.persona.v1 import persona_service_pb2_grpc
from friday.persona.v1.persona_service_pb2 import GetPersonaRequest, GetPersonaResponse
from services.common.tracing import TRACE_ID_METADATA_KEY
from services.grpc_runtime.channel import create_channel
from services.grpc_runtime.config import ClientTLSConfig

from .call_flow import UpstreamError

# Codes after which the same request may succeed later, so LiveKit should redeliver.
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


# A target may name several replicas ("ipv4:10.0.0.1:50051,10.0.0.2:50051") or a DNS
# name with several A records (a headless Kubernetes Service): spread calls over all
# of them and, through client-side health checking, skip replicas that are not SERVING.
# No retry policy: PersonaService and DispatcherService retry their own upstreams, and
# the gateway's answer to LiveKit (503) is what triggers the next attempt.
_BALANCED_SERVICE_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


def upstream_channel(target: str, tls: ClientTLSConfig | None) -> grpc.aio.Channel:
    return create_channel(target, tls=tls, options=[("grpc.service_config", _BALANCED_SERVICE_CONFIG)])


# gRPC metadata values must be printable ASCII and fit the peer's header limit; the
# trace id comes from the webhook's event id, which a signed body may set to anything.
_MAX_TRACE_ID_CHARS = 128


def _trace_metadata(trace_id: str) -> tuple[str, str]:
    safe = "".join(ch if " " <= ch <= "~" else "_" for ch in trace_id[:_MAX_TRACE_ID_CHARS]).strip()
    return (TRACE_ID_METADATA_KEY, safe or "-")


def _upstream_error(service: str, error: grpc.aio.AioRpcError) -> UpstreamError:
    return UpstreamError(error.code().name, f"{service}: {error.details() or ''}", retryable=error.code() in _RETRYABLE)


def _bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class GrpcPersonaLookup:
    def __init__(self, channel: grpc.aio.Channel, token: str | None = None) -> None:
        self._stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        self._auth = _bearer(token)

    async def get_persona(self, dialed_number: str, *, timeout: float, trace_id: str) -> GetPersonaResponse:
        request = GetPersonaRequest(dialed_number=dialed_number, allow_default=True)
        try:
            return await self._stub.GetPersona(
                request, timeout=timeout, metadata=(_trace_metadata(trace_id), *self._auth)
            )
        except grpc.aio.AioRpcError as exc:
            raise _upstream_error("PersonaService", exc) from exc


class GrpcAgentDispatcher:
    def __init__(self, channel: grpc.aio.Channel, token: str | None = None) -> None:
        self._stub = dispatcher_service_pb2_grpc.DispatcherServiceStub(channel)
        self._auth = _bearer(token)

    async def dispatch(self, request: DispatchAgentRequest, *, timeout: float, trace_id: str) -> DispatchAgentResponse:
        try:
            return await self._stub.DispatchAgent(
                request, timeout=timeout, metadata=(_trace_metadata(trace_id), *self._auth)
            )
        except grpc.aio.AioRpcError as exc:
            raise _upstream_error("DispatcherService", exc) from exc
