"""A small typed async client for DispatcherService, used by the `friday dispatcher`
CLI and the tests (the webhook gateway has its own adapter in
services/webhook_gateway/upstreams.py). Every call has a deadline (default or per call), carries
the bearer token and the call's trace id, and fails with `DispatcherCallError`
(gRPC code + ErrorInfo reason + whether a retry may help).

No channel retry policy: the service retries LiveKit itself within the deadline, and
stacking retries would multiply attempts (docs/architecture.md, "Deadlines and retries")."""

from __future__ import annotations

import functools

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from friday.dispatcher.v1 import dispatcher_service_pb2 as pb
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from services.common import ports
from services.grpc_runtime import ServiceCallError, ServiceClient

DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_TARGET = ports.DISPATCHER.local_target


class DispatcherCallError(ServiceCallError):
    """A failed DispatcherService call; `retryable` calls may be repeated (DispatchAgent is idempotent)."""


class DispatcherClient(ServiceClient):
    """`DispatcherClient.from_env()`: DISPATCHER_TARGET, DISPATCHER_TOKEN and DISPATCHER_TLS_CA_FILE /
    _CLIENT_CERT_FILE / _CLIENT_KEY_FILE / _SERVER_NAME."""

    env_prefix = "DISPATCHER"
    default_target = DEFAULT_TARGET
    call_error = DispatcherCallError
    default_timeout_seconds = DEFAULT_TIMEOUT_SECONDS

    @functools.cached_property
    def _stub(self) -> pb_grpc.DispatcherServiceAsyncStub:
        return pb_grpc.DispatcherServiceStub(self.channel)

    async def dispatch_agent(
        self,
        room: str,
        agent_name: str,
        metadata: AgentJobMetadata | None = None,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> pb.DispatchAgentResponse:
        request = pb.DispatchAgentRequest(room=room, agent_name=agent_name, metadata=metadata)
        return await self._call(self._stub.DispatchAgent, request, timeout, trace_id)

    async def list_dispatches(
        self, room: str, *, timeout: float | None = None, trace_id: str | None = None
    ) -> list[pb.Dispatch]:
        response = await self._call(self._stub.ListDispatches, pb.ListDispatchesRequest(room=room), timeout, trace_id)
        return list(response.dispatches)

    async def trunk_numbers(
        self, trunk_id: str, *, timeout: float | None = None, trace_id: str | None = None
    ) -> list[str]:
        request = pb.GetTrunkNumbersRequest(trunk_id=trunk_id)
        response = await self._call(self._stub.GetTrunkNumbers, request, timeout, trace_id)
        return list(response.numbers)

    async def cancel_dispatch(
        self, room: str, dispatch_id: str, *, timeout: float | None = None, trace_id: str | None = None
    ) -> pb.Dispatch:
        request = pb.CancelDispatchRequest(room=room, dispatch_id=dispatch_id)
        response = await self._call(self._stub.CancelDispatch, request, timeout, trace_id)
        return response.dispatch
