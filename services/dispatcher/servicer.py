"""DispatcherService over gRPC: the one place that knows gRPC status codes. Turns
requests into Dispatcher calls with a deadline and domain errors into status +
ErrorInfo (domain "dispatcher.friday")."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

import grpc

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from friday.dispatcher.v1 import dispatcher_service_pb2 as pb
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from services.common import job_metadata as codec
from services.common import tracing
from services.common.log_safety import safe_trace_id
from services.dispatcher import errors
from services.dispatcher.dispatcher import Dispatcher
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.transport import DispatchRecord
from services.grpc_runtime import StatusTable, abort_with_error, answer_budget, current_trace_id

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "dispatcher.friday"

# Domain error → gRPC code. Most specific class first (isinstance order).
STATUS = StatusTable(
    [
        (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.RoomNotFound, grpc.StatusCode.NOT_FOUND),
        (errors.DispatchNotFound, grpc.StatusCode.NOT_FOUND),
        (errors.TrunkNotFound, grpc.StatusCode.NOT_FOUND),
        # No worker took the job: the dispatch was withdrawn; a retry may find a worker.
        (errors.NoAgentWorker, grpc.StatusCode.UNAVAILABLE),
        # Our LiveKit key refused: the operator must fix config. Never UNAUTHENTICATED,
        # which tells *callers* their token is wrong (docs/architecture.md, "Status codes").
        (errors.LiveKitRejectedCredentials, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.LiveKitRejectedRequest, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.LiveKitPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.LiveKitUnavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.LiveKitRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.ClaimStoreUnavailable, grpc.StatusCode.UNAVAILABLE),
        # The dispatch is being made by another request; the caller's retry will find it.
        (errors.DispatchInProgress, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.LiveKitInternal, grpc.StatusCode.INTERNAL),
    ]
)


def dispatch_message(record: DispatchRecord, job_metadata: AgentJobMetadata | None = None) -> pb.Dispatch:
    """The dispatch as callers see it. `job_metadata` is what we know we stored (our own
    create); otherwise the stored text is parsed, and left unset when it is not ours."""
    message = pb.Dispatch()
    _fill_dispatch(message, record, job_metadata)
    return message


def _fill_dispatch(message: pb.Dispatch, record: DispatchRecord, job_metadata: AgentJobMetadata | None) -> None:
    """`dispatch_message` written into `message` in place: a response's own field, so the
    dispatch (its metadata text and job metadata, the bulk of the answer) is not built
    apart and then copied into the response once more."""
    message.dispatch_id = record.dispatch_id
    message.agent_name = record.agent_name
    message.room = record.room
    message.metadata = record.metadata
    if job_metadata is None:
        try:
            job_metadata = codec.decode(record.metadata)
        except codec.JobMetadataError:
            return
    message.job_metadata.CopyFrom(job_metadata)


class DispatcherServicer(pb_grpc.DispatcherServiceServicer):
    def __init__(self, dispatcher: Dispatcher, metrics: DispatcherMetrics, max_budget_seconds: float) -> None:
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._max_budget = max_budget_seconds

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        return asyncio.get_running_loop().time() + answer_budget(context, self._max_budget)

    async def DispatchAgent(  # noqa: N802 - gRPC method name
        self, request: pb.DispatchAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DispatchAgentResponse:
        if not current_trace_id() and request.metadata.trace_id:
            # The runtime already set the caller's x-friday-trace-id; a caller that sent the
            # trace id only in the job metadata still gets traced logs (reset by the runtime).
            # Escaped like a header's: the metadata is the caller's text, not ours.
            tracing.current_trace_id.set(safe_trace_id(request.metadata.trace_id))
        metadata = request.metadata
        if not metadata.schema_version:
            # Stamped here, as the codec would stamp a copy of it: the metadata LiveKit is
            # sent and the response's job_metadata are the same, without that copy.
            metadata.schema_version = codec.CURRENT_SCHEMA_VERSION
        try:
            outcome = await self._dispatcher.dispatch_agent(
                request.room, request.agent_name, metadata, self._deadline(context)
            )
        except errors.DispatchError as exc:
            code = STATUS.code_of(exc)
            self._metrics.record_dispatch("failed", code.name)
            await self._abort(context, exc, code)
        self._metrics.record_dispatch("already_existed" if outcome.already_existed else "created")
        response = pb.DispatchAgentResponse(already_existed=outcome.already_existed)
        # Our own create stored the request's metadata (stamped above, as the codec stamps what LiveKit holds).
        _fill_dispatch(response.dispatch, outcome.dispatch, None if outcome.already_existed else metadata)
        job = outcome.dispatch.live_job
        if job is not None:
            answered = response.job
            answered.SetInParent()
            answered.job_id = job.job_id
            answered.worker_id = job.worker_id
            answered.participant_identity = job.participant_identity
            answered.status = job.status
        return response

    async def ListDispatches(  # noqa: N802
        self, request: pb.ListDispatchesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDispatchesResponse:
        try:
            records = await self._dispatcher.list_dispatches(request.room, self._deadline(context))
        except errors.DispatchError as exc:
            await self._abort(context, exc, STATUS.code_of(exc))
        return pb.ListDispatchesResponse(dispatches=[dispatch_message(r) for r in records])

    async def CancelDispatch(  # noqa: N802
        self, request: pb.CancelDispatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelDispatchResponse:
        try:
            record = await self._dispatcher.cancel_dispatch(request.room, request.dispatch_id, self._deadline(context))
        except errors.DispatchError as exc:
            await self._abort(context, exc, STATUS.code_of(exc))
        return pb.CancelDispatchResponse(dispatch=dispatch_message(record))

    async def GetTrunkNumbers(  # noqa: N802
        self, request: pb.GetTrunkNumbersRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTrunkNumbersResponse:
        try:
            numbers = await self._dispatcher.trunk_numbers(request.trunk_id, self._deadline(context))
        except errors.DispatchError as exc:
            await self._abort(context, exc, STATUS.code_of(exc))
        return pb.GetTrunkNumbersResponse(numbers=numbers)

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext, exc: errors.DispatchError, code: grpc.StatusCode) -> NoReturn:
        level = logging.WARNING if code != grpc.StatusCode.INVALID_ARGUMENT else logging.INFO
        logger.log(level, "%s %s: %s", code.name, exc.reason, exc)
        await abort_with_error(context, code, str(exc), reason=exc.reason, domain=ERROR_DOMAIN, metadata=exc.metadata)
