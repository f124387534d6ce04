"""The gRPC face of PersonaService: request → PersonaLookup → response, with the
domain errors mapped to status codes + ErrorInfo in one place."""

from __future__ import annotations

import asyncio
import datetime
import logging
import struct
from collections import OrderedDict
from typing import NoReturn

import grpc

from friday.persona.v1 import persona_pb2, persona_service_pb2, persona_service_pb2_grpc
from friday.persona.v1.campaign_pb2 import Campaign
from services.grpc_runtime import StatusTable, abort_with_error, answer_budget, peer_host
from services.grpc_runtime.metrics import LabelledChildren
from services.persona.changes import Event, KeepAlive, Resync, SubscriberTooSlow
from services.persona.errors import (
    ERROR_DOMAIN,
    CrmUnavailableError,
    InvalidNumberError,
    LookupDeadlineError,
    NewNumberRateLimitedError,
    PersonaLookupError,
    PersonaNotFoundError,
    TooManyNumbersError,
    WatchTooSlowError,
    WatchUnavailableError,
)
from services.persona.lookup import PersonaLookup, Resolution
from services.persona.metrics import PersonaMetrics

logger = logging.getLogger(__name__)

GetPersonaResponse = persona_service_pb2.GetPersonaResponse
SERVICE_NAME = persona_service_pb2.DESCRIPTOR.services_by_name["PersonaService"].full_name

STATUS = StatusTable(
    [
        (InvalidNumberError, grpc.StatusCode.INVALID_ARGUMENT),
        (PersonaNotFoundError, grpc.StatusCode.NOT_FOUND),
        (CrmUnavailableError, grpc.StatusCode.UNAVAILABLE),
        (LookupDeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
        (NewNumberRateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (WatchTooSlowError, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (TooManyNumbersError, grpc.StatusCode.INVALID_ARGUMENT),
        (WatchUnavailableError, grpc.StatusCode.UNIMPLEMENTED),
    ]
)
# Tells a client channel's retry policy not to retry this UNAVAILABLE: the service
# already retried the CRM inside the deadline (docs/architecture.md, "Deadlines and retries").
# A server that is down still yields a transport UNAVAILABLE, which is retried.
_NO_RETRY = (("grpc-retry-pushback-ms", "-1"),)
MAX_NUMBERS_PER_REQUEST = 100
MAX_WATCHED_NUMBERS = 1_000


def source_label(source: persona_pb2.PersonaSource.ValueType) -> str:
    return persona_pb2.PersonaSource.Name(source).removeprefix("PERSONA_SOURCE_").lower()


# Distinct answers served recently (number × persona × selection): far more than a
# service's hot numbers, and small next to the cache (each is one serialized response).
MAX_RESPONSE_TEMPLATES = 1_024

# GetPersonaResponse.age_seconds (field 4, a double) as it is written on the wire: its
# tag, then the 8 bytes of the value; left out when those bytes are all zero, as the
# protobuf runtime leaves out a proto3 double.
_AGE_TAG = bytes([GetPersonaResponse.AGE_SECONDS_FIELD_NUMBER << 3 | 1])
_DOUBLE = struct.Struct("<d")
_ZERO_DOUBLE = bytes(_DOUBLE.size)


class ResponseTemplates:
    """The GetPersonaResponse last served for each answer, kept serialized around its
    one field that changes call to call (`age_seconds`): the fields before it and the
    fields after it, so the next call to the same answer is two concatenations instead
    of building (or copying) the message and serializing its 767 bytes again (measured
    in the bench; see README Performance). The bytes are those the protobuf runtime
    writes for the whole message: a template is kept only once its two halves and an
    age were checked to give exactly that.

    A template is reused only while the lookup answers with the very same persona
    object (the cached one; cached answers are never mutated) and the same other
    fields; a new version, a Redis cache's freshly decoded copy or a default persona
    builds anew. Bounded; the oldest template goes first."""

    def __init__(self, max_entries: int = MAX_RESPONSE_TEMPLATES) -> None:
        self._max_entries = max_entries
        self._held: OrderedDict[tuple[object, ...], tuple[persona_pb2.Persona, object, bytes, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def encoded(self, found: Resolution) -> bytes:
        """The serialized response for `found`, byte for byte what
        `GetPersonaResponse(...).SerializeToString()` gives for the same fields."""
        selection = found.selection
        key = (
            found.normalized_number,
            found.source,
            found.default_reason,
            None
            if selection is None
            else (selection.campaign_id, selection.campaign_version, selection.variant_id, selection.rule),
        )
        age = _DOUBLE.pack(found.age_seconds)
        held = self._held.get(key)
        if held is not None and held[0] is found.persona and held[1] is found.action:
            before, after = held[2], held[3]
            return before + after if age == _ZERO_DOUBLE else before + _AGE_TAG + age + after
        whole = GetPersonaResponse(
            persona=found.persona,
            source=found.source,
            normalized_number=found.normalized_number,
            age_seconds=found.age_seconds,
            default_reason=found.default_reason,
            selection=selection,
            action=found.action,
        ).SerializeToString()
        before = GetPersonaResponse(
            persona=found.persona, source=found.source, normalized_number=found.normalized_number
        ).SerializeToString()
        after = GetPersonaResponse(
            default_reason=found.default_reason, selection=selection, action=found.action
        ).SerializeToString()
        if whole != (before + after if age == _ZERO_DOUBLE else before + _AGE_TAG + age + after):
            return whole  # not the layout the halves assume: this answer is serialized whole each call
        self._held[key] = (found.persona, found.action, before, after)
        self._held.move_to_end(key)
        if len(self._held) > self._max_entries:
            self._held.popitem(last=False)
        return whole


class PersonaServicer(persona_service_pb2_grpc.PersonaServiceServicer):
    def __init__(
        self,
        lookup: PersonaLookup,
        metrics: PersonaMetrics,
        *,
        budget_seconds: float,
        watch_keepalive_seconds: float = 15.0,
    ) -> None:
        self._lookup = lookup
        self._keepalive = watch_keepalive_seconds
        self._metrics = metrics
        self._budget = budget_seconds
        # persona_requests_total{code="OK", source}: the per-call path's counter.
        self._ok_requests = LabelledChildren(metrics.requests)
        self._responses = ResponseTemplates()

    async def GetPersona(
        self, request: persona_service_pb2.GetPersonaRequest, context: grpc.aio.ServicerContext
    ) -> persona_service_pb2.GetPersonaResponse:
        """GetPersona as a message, for callers in process; the server sends
        `get_persona_encoded`'s bytes (the same response, already serialized)."""
        return GetPersonaResponse.FromString(await self.get_persona_encoded(request, context))

    async def get_persona_encoded(
        self, request: persona_service_pb2.GetPersonaRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """GetPersona's response, serialized: how the server serves GetPersona
        (`ServiceSpec.encoded_methods`), so a warm number's unchanged answer is not
        built and serialized anew on each call."""
        budget = answer_budget(context, self._budget)
        try:
            found = await self._lookup.get(
                request.dialed_number,
                allow_default=request.allow_default,
                budget_seconds=budget,
                # Only a never-seen number needs the peer (the new-number limit): not read on a hit.
                peer=lambda: peer_host(context.peer()),
                caller_number=request.caller_number,
                at=request.evaluation_time.ToDatetime(datetime.UTC) if request.HasField("evaluation_time") else None,
            )
        except PersonaLookupError as exc:
            code = STATUS.code_of(exc)
            self._metrics.requests.labels(code.name, "none").inc()
            logger.info("GetPersona %r -> %s: %s", request.dialed_number, code.name, exc)  # trace id: the log filter
            await abort_with_error(
                context,
                code,
                str(exc),
                reason=exc.reason,
                domain=ERROR_DOMAIN,
                metadata=_error_metadata(request.dialed_number, exc),
                trailing_metadata=_NO_RETRY if code == grpc.StatusCode.UNAVAILABLE else (),
            )
        self._ok_requests("OK", source_label(found.source)).inc()
        return self._responses.encoded(found)

    async def InvalidatePersona(
        self, request: persona_service_pb2.InvalidatePersonaRequest, context: grpc.aio.ServicerContext
    ) -> persona_service_pb2.InvalidatePersonaResponse:
        try:
            done = await self._lookup.invalidate(
                request.dialed_number, budget_seconds=answer_budget(context, self._budget)
            )
        except InvalidNumberError as exc:
            await self._abort(context, exc, request.dialed_number)
        return persona_service_pb2.InvalidatePersonaResponse(
            normalized_number=done.normalized_number,
            removed=done.removed,
            source_cacheable=self._lookup.source.cacheable,
            refetched=done.refetched,
            version=done.version,
        )

    async def NotifyPersonaChanges(
        self, request: persona_service_pb2.NotifyPersonaChangesRequest, context: grpc.aio.ServicerContext
    ) -> persona_service_pb2.NotifyPersonaChangesResponse:
        budget = answer_budget(context, self._budget)
        try:
            if len(request.dialed_numbers) > MAX_NUMBERS_PER_REQUEST:
                raise TooManyNumbersError(
                    f"{len(request.dialed_numbers)} numbers; at most {MAX_NUMBERS_PER_REQUEST} per request"
                )
            numbers = [self._lookup.parse(text) for text in request.dialed_numbers]
            refreshed = await asyncio.gather(*(self._lookup.refresh(n, budget_seconds=budget) for n in numbers))
        except PersonaLookupError as exc:
            await self._abort(context, exc, ",".join(request.dialed_numbers))
        return persona_service_pb2.NotifyPersonaChangesResponse(
            refreshed=[
                persona_service_pb2.PersonaRefresh(
                    normalized_number=r.normalized_number, version=r.version, changed=r.changed
                )
                for r in refreshed
            ]
        )

    async def WatchPersonas(  # type: ignore[override]  # grpc.aio's write-style streaming, which the stubs omit
        self, request: persona_service_pb2.WatchPersonasRequest, context: grpc.aio.ServicerContext
    ) -> None:
        # Written with context.write, not yielded: a subscriber that stops reading blocks
        # the write, and only a write in our own code can be interrupted to cut it off.
        feed = self._lookup.feed
        task = asyncio.current_task()
        cut_off = False

        def cut() -> None:
            nonlocal cut_off
            cut_off = True
            if task is not None:
                task.cancel()

        try:
            if feed is None:
                raise WatchUnavailableError("this PersonaService publishes no changes")
            if len(request.dialed_numbers) > MAX_WATCHED_NUMBERS:
                raise TooManyNumbersError(f"at most {MAX_WATCHED_NUMBERS} numbers per watch")
            numbers = frozenset(self._lookup.parse(t).e164 for t in request.dialed_numbers) or None
            self._metrics.watchers.inc()
            try:
                events = feed.watch(numbers, request.resume_token, keepalive_seconds=self._keepalive, on_overflow=cut)
                async for event in events:
                    await context.write(_watch_response(event))
            except asyncio.CancelledError:
                if not cut_off or task is None:
                    raise
                task.uncancel()
                raise WatchTooSlowError(
                    f"the subscriber fell more than {feed.buffer} changes behind; reconnect with the last resume_token"
                ) from None
            except SubscriberTooSlow as exc:
                raise WatchTooSlowError(f"the subscriber {exc}; reconnect with the last resume_token") from exc
            finally:
                self._metrics.watchers.dec()
        except PersonaLookupError as exc:
            await self._abort(context, exc, ",".join(request.dialed_numbers))

    async def _abort(self, context: grpc.aio.ServicerContext, exc: PersonaLookupError, asked: str) -> NoReturn:
        code = STATUS.code_of(exc)
        await abort_with_error(
            context, code, str(exc), reason=exc.reason, domain=ERROR_DOMAIN, metadata={"dialed_number": asked[:64]}
        )


def _watch_response(event: Event) -> persona_service_pb2.WatchPersonasResponse:
    if isinstance(event, KeepAlive):
        return persona_service_pb2.WatchPersonasResponse(
            keep_alive=persona_service_pb2.KeepAlive(), resume_token=event.token
        )
    if isinstance(event, Resync):
        return persona_service_pb2.WatchPersonasResponse(resync=persona_service_pb2.Resync(), resume_token=event.token)
    change = persona_service_pb2.PersonaChange(
        normalized_number=event.number,
        version=event.version,
        previous_version=event.previous_version,
        removed=event.removed,
    )
    if isinstance(event.answer, Campaign):
        change.campaign.CopyFrom(event.answer)
    elif event.answer is not None:
        change.persona.CopyFrom(event.answer)
    change.changed_at.FromDatetime(datetime.datetime.fromtimestamp(event.changed_at, datetime.UTC))
    return persona_service_pb2.WatchPersonasResponse(change=change, resume_token=event.token)


def _error_metadata(dialed_number: str, exc: PersonaLookupError) -> dict[str, str]:
    metadata = {"dialed_number": dialed_number[:64], "normalized_number": exc.number}
    if isinstance(exc, NewNumberRateLimitedError):
        metadata["limit"] = exc.limit
    return metadata
