"""CallHistoryService over gRPC: the one place that knows gRPC status codes. Turns
requests into CallHistory calls and domain errors into status + ErrorInfo (domain
"calls.friday")."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1 import call_history_service_pb2_grpc as pb_grpc
from friday.calls.v1.call_pb2 import CallEvent, CallOutcome
from services.calls import errors
from services.calls.history import CallHistory
from services.calls.paging import decode_page_token, encode_page_token
from services.calls.records import OUTCOME_LABELS, millis
from services.calls.store import CallQuery, Recorded
from services.grpc_runtime import StatusTable, abort_with_error

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "calls.friday"
DEFAULT_PAGE_SIZE = 50
# RecordCallEvents' bound (its proto says so); a request's events are recorded a room at a time.
MAX_EVENTS_PER_REQUEST = 500

STATUS = StatusTable(
    [
        (errors.InvalidEvent, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.InvalidQuery, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.InvalidPageToken, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.CallNotFound, grpc.StatusCode.NOT_FOUND),
        (errors.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    ]
)


class CallHistoryServicer(pb_grpc.CallHistoryServiceServicer):
    def __init__(self, history: CallHistory, max_page_size: int) -> None:
        self._history = history
        self._max_page_size = max_page_size

    async def RecordCallEvent(  # noqa: N802 - gRPC method name
        self, request: pb.RecordCallEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordCallEventResponse:
        try:
            result = await self._history.record(request.event)
        except errors.CallsError as exc:
            await _abort(context, exc)
        return pb.RecordCallEventResponse(recorded=result.recorded, call=result.after)

    async def RecordCallEvents(  # noqa: N802
        self, request: pb.RecordCallEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordCallEventsResponse:
        try:
            if not 1 <= len(request.events) <= MAX_EVENTS_PER_REQUEST:
                raise errors.InvalidEvent(f"send 1-{MAX_EVENTS_PER_REQUEST} events, got {len(request.events)}")
            # A refusal is its event's own answer, so the rest are still recorded; a store
            # that cannot be reached fails the whole request.
            outcomes = await self._history.record_many(request.events)
        except errors.CallsError as exc:
            await _abort(context, exc)
        return pb.RecordCallEventsResponse(results=map(_result, request.events, outcomes))

    async def ListCalls(  # noqa: N802
        self, request: pb.ListCallsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCallsResponse:
        try:
            query = self._query(request)
            calls = await self._history.list_calls(query)
        except errors.CallsError as exc:
            await _abort(context, exc)
        token = ""
        if len(calls) == query.limit:
            last = calls[-1]
            token = encode_page_token(millis(last.started_at), last.room)
        return pb.ListCallsResponse(calls=calls, next_page_token=token)

    def _query(self, request: pb.ListCallsRequest) -> CallQuery:
        size = request.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= self._max_page_size:
            raise errors.InvalidQuery(f"page_size must be 1-{self._max_page_size}, got {request.page_size}")
        if request.outcome not in CallOutcome.values():
            raise errors.InvalidQuery(f"unknown outcome {request.outcome}")
        return CallQuery(
            start_ms=millis(request.start_time) if request.HasField("start_time") else None,
            end_ms=millis(request.end_time) if request.HasField("end_time") else None,
            dialed_number=request.dialed_number.strip(),
            persona_id=request.persona_id.strip(),
            outcome=OUTCOME_LABELS.get(request.outcome, ""),
            limit=size,
            after=decode_page_token(request.page_token) if request.page_token else None,
        )

    async def GetCall(  # noqa: N802
        self, request: pb.GetCallRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCallResponse:
        try:
            call, events = await self._history.get_call(request.call)
        except errors.CallsError as exc:
            await _abort(context, exc)
        return pb.GetCallResponse(call=call, events=events)

    async def GetCallStats(  # noqa: N802
        self, request: pb.GetCallStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCallStatsResponse:
        try:
            return await self._history.stats(
                millis(request.start_time) if request.HasField("start_time") else None,
                millis(request.end_time) if request.HasField("end_time") else None,
                request.bucket_seconds,
            )
        except errors.CallsError as exc:
            await _abort(context, exc)


def _result(event: CallEvent, outcome: Recorded | errors.InvalidEvent) -> pb.RecordCallEventResult:
    if isinstance(outcome, errors.InvalidEvent):
        logger.info("%s refused in a batch: %s", outcome.reason, outcome)
        return pb.RecordCallEventResult(
            event_id=event.event_id, error_reason=outcome.reason, error_message=str(outcome)
        )
    return pb.RecordCallEventResult(event_id=event.event_id, recorded=outcome.recorded)


async def _abort(context: grpc.aio.ServicerContext, exc: errors.CallsError) -> NoReturn:
    code = STATUS.code_of(exc)
    level = logging.WARNING if code == grpc.StatusCode.UNAVAILABLE else logging.INFO
    logger.log(level, "%s %s: %s", code.name, exc.reason, exc)
    await abort_with_error(context, code, str(exc), reason=exc.reason, domain=ERROR_DOMAIN, metadata=exc.metadata)
