"""The gateway's gRPC edge: PersonaService and DispatcherService behind the small
interfaces the call flow needs (call_flow.PersonaLookup / AgentDispatcher).

Each call carries its own deadline (Python does not propagate them), the bearer
token and the call's trace id; a failure becomes an `UpstreamError` that says
whether a retry can help, so nothing past this module knows gRPC status codes.
"""

from __future__ import annotations

import json

import grpc

from friday.dispatcher.v1 import dispatcher_service_pb2_grpc
from friday.dispatcher.v1.dispatcher_service_pb2 import (
    DispatchAgentRequest,
    DispatchAgentResponse,
    GetTrunkNumbersRequest,
)
from friday.persona.v1 import persona_service_pb2_grpc
from friday.persona.v1.persona_service_pb2 import GetPersonaRequest, GetPersonaResponse
from services.grpc_runtime import RETRYABLE_CODES, call_metadata, error_reason
from services.grpc_runtime.channel import create_channel
from services.grpc_runtime.config import ClientTLSConfig
from services.webhook_gateway.errors import UpstreamError

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


def _upstream_error(service: str, error: grpc.aio.AioRpcError) -> UpstreamError:
    code = error.code()
    return UpstreamError(
        service,
        code.name,
        error.details() or "",
        retryable=code in RETRYABLE_CODES,
        invalid_request=code == grpc.StatusCode.INVALID_ARGUMENT,
        reason=error_reason(error),
    )


class GrpcPersonaLookup:
    def __init__(self, channel: grpc.aio.Channel, token: str | None = None) -> None:
        self._stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        self._token = token

    async def get_persona(
        self, dialed_number: str, *, caller_number: str, timeout: float, trace_id: str
    ) -> GetPersonaResponse:
        request = GetPersonaRequest(dialed_number=dialed_number, allow_default=True, caller_number=caller_number)
        try:
            return await self._stub.GetPersona(
                request, timeout=timeout, metadata=call_metadata(token=self._token, trace_id=trace_id or "-")
            )
        except grpc.aio.AioRpcError as exc:
            raise _upstream_error("PersonaService", exc) from exc


class GrpcAgentDispatcher:
    def __init__(self, channel: grpc.aio.Channel, token: str | None = None) -> None:
        self._stub = dispatcher_service_pb2_grpc.DispatcherServiceStub(channel)
        self._token = token

    async def dispatch(self, request: DispatchAgentRequest, *, timeout: float, trace_id: str) -> DispatchAgentResponse:
        try:
            return await self._stub.DispatchAgent(
                request, timeout=timeout, metadata=call_metadata(token=self._token, trace_id=trace_id or "-")
            )
        except grpc.aio.AioRpcError as exc:
            raise _upstream_error("DispatcherService", exc) from exc

    async def trunk_numbers(self, trunk_id: str, *, timeout: float, trace_id: str) -> list[str]:
        try:
            response = await self._stub.GetTrunkNumbers(
                GetTrunkNumbersRequest(trunk_id=trunk_id),
                timeout=timeout,
                metadata=call_metadata(token=self._token, trace_id=trace_id or "-"),
            )
        except grpc.aio.AioRpcError as exc:
            raise _upstream_error("DispatcherService", exc) from exc
        return list(response.numbers)
