"""A small typed async client for CallHistoryService, used by the `friday calls` CLI
and the tests (the gateway reports through its own adapter in
services/webhook_gateway/call_reporter.py). Every call has a deadline and carries the
bearer token; failures raise `CallsCallError` (gRPC code + ErrorInfo reason)."""

from __future__ import annotations

import functools

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1 import call_history_service_pb2_grpc as pb_grpc
from friday.calls.v1.call_pb2 import CallEvent
from services.common import ports
from services.grpc_runtime import ServiceCallError, ServiceClient

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_TARGET = ports.CALLS.local_target


class CallsCallError(ServiceCallError):
    """A failed CallHistoryService call."""


class CallsClient(ServiceClient):
    """`CallsClient.from_env()`: CALLS_TARGET, CALLS_TOKEN and CALLS_TLS_CA_FILE / _CLIENT_CERT_FILE /
    _CLIENT_KEY_FILE / _SERVER_NAME."""

    env_prefix = "CALLS"
    default_target = DEFAULT_TARGET
    call_error = CallsCallError
    default_timeout_seconds = DEFAULT_TIMEOUT_SECONDS

    @functools.cached_property
    def _stub(self) -> pb_grpc.CallHistoryServiceAsyncStub:
        return pb_grpc.CallHistoryServiceStub(self.channel)

    async def record(self, event: CallEvent, *, timeout: float | None = None) -> pb.RecordCallEventResponse:
        return await self._call(self._stub.RecordCallEvent, pb.RecordCallEventRequest(event=event), timeout)

    async def record_many(
        self, events: list[CallEvent], *, timeout: float | None = None
    ) -> pb.RecordCallEventsResponse:
        return await self._call(self._stub.RecordCallEvents, pb.RecordCallEventsRequest(events=events), timeout)

    async def list_calls(self, request: pb.ListCallsRequest, *, timeout: float | None = None) -> pb.ListCallsResponse:
        return await self._call(self._stub.ListCalls, request, timeout)

    async def get_call(self, call: str, *, timeout: float | None = None) -> pb.GetCallResponse:
        return await self._call(self._stub.GetCall, pb.GetCallRequest(call=call), timeout)

    async def stats(self, request: pb.GetCallStatsRequest, *, timeout: float | None = None) -> pb.GetCallStatsResponse:
        return await self._call(self._stub.GetCallStats, request, timeout)
