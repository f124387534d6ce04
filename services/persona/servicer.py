"""The gRPC face of PersonaService: request → PersonaLookup → response, with the
domain errors mapped to status codes + ErrorInfo in one place."""

from __future__ import annotations

import datetime
import logging

import grpc

from friday.persona.v1 import persona_pb2, persona_service_pb2, persona_service_pb2_grpc
from services.grpc_runtime import StatusTable, abort_with_error, answer_budget, peer_host
from services.persona.errors import (
    ERROR_DOMAIN,
    CrmUnavailableError,
    InvalidNumberError,
    LookupDeadlineError,
    NewNumberRateLimitedError,
    PersonaLookupError,
    PersonaNotFoundError,
)
from services.persona.lookup import PersonaLookup
from services.persona.metrics import PersonaMetrics

logger = logging.getLogger(__name__)

SERVICE_NAME = persona_service_pb2.DESCRIPTOR.services_by_name["PersonaService"].full_name

STATUS = StatusTable(
    [
        (InvalidNumberError, grpc.StatusCode.INVALID_ARGUMENT),
        (PersonaNotFoundError, grpc.StatusCode.NOT_FOUND),
        (CrmUnavailableError, grpc.StatusCode.UNAVAILABLE),
        (LookupDeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
        (NewNumberRateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ]
)
# Tells a client channel's retry policy not to retry this UNAVAILABLE: the service
# already retried the CRM inside the deadline (docs/architecture.md, "Deadlines and retries").
# A server that is down still yields a transport UNAVAILABLE, which is retried.
_NO_RETRY = (("grpc-retry-pushback-ms", "-1"),)


def source_label(source: persona_pb2.PersonaSource.ValueType) -> str:
    return persona_pb2.PersonaSource.Name(source).removeprefix("PERSONA_SOURCE_").lower()


class PersonaServicer(persona_service_pb2_grpc.PersonaServiceServicer):
    def __init__(self, lookup: PersonaLookup, metrics: PersonaMetrics, *, budget_seconds: float) -> None:
        self._lookup = lookup
        self._metrics = metrics
        self._budget = budget_seconds

    async def GetPersona(
        self, request: persona_service_pb2.GetPersonaRequest, context: grpc.aio.ServicerContext
    ) -> persona_service_pb2.GetPersonaResponse:
        budget = answer_budget(context, self._budget)
        try:
            found = await self._lookup.get(
                request.dialed_number,
                allow_default=request.allow_default,
                budget_seconds=budget,
                peer=peer_host(context.peer()),
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
        self._metrics.requests.labels("OK", source_label(found.source)).inc()
        return persona_service_pb2.GetPersonaResponse(
            persona=found.persona,
            source=found.source,
            normalized_number=found.normalized_number,
            age_seconds=found.age_seconds,
            default_reason=found.default_reason,
            selection=found.selection,
            action=found.action,
        )

    async def InvalidatePersona(
        self, request: persona_service_pb2.InvalidatePersonaRequest, context: grpc.aio.ServicerContext
    ) -> persona_service_pb2.InvalidatePersonaResponse:
        try:
            number, removed = await self._lookup.invalidate(request.dialed_number)
        except InvalidNumberError as exc:
            await abort_with_error(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                str(exc),
                reason=exc.reason,
                domain=ERROR_DOMAIN,
                metadata={"dialed_number": request.dialed_number[:64]},
            )
        return persona_service_pb2.InvalidatePersonaResponse(
            normalized_number=number, removed=removed, source_cacheable=self._lookup.source.cacheable
        )


def _error_metadata(dialed_number: str, exc: PersonaLookupError) -> dict[str, str]:
    metadata = {"dialed_number": dialed_number[:64], "normalized_number": exc.number}
    if isinstance(exc, NewNumberRateLimitedError):
        metadata["limit"] = exc.limit
    return metadata
