"""The gateway's one job, free of HTTP and gRPC: for a SIP call, find the persona
and make sure exactly one agent is dispatched with it, inside a budget.

    event seen before? → Duplicate (the ledger: a redelivery costs nothing)
    call facts events.classify left out for their shape → logged and counted; the
      call goes on without them
    dialed number hidden by the dispatch rule? → the inbound trunk's one number
      (DispatcherService.GetTrunkNumbers), else the default persona
    PersonaService.GetPersona (allow_default, at most persona_timeout, always leaving
      time for the dispatch) → persona, or the default persona and why
    AgentJobMetadata built once, size-checked against LiveKit's limit
    DispatcherService.DispatchAgent (the rest of the budget) → Dispatched, and the
      event is remembered; RoomGone when the call already ended; or DispatchFailed,
      which says whether (and when) a redelivery can help

An answered call beats a perfect one: if PersonaService is down, slow, or has
nothing for the number, the call is dispatched with the default persona. Only a
failed *dispatch* is worth LiveKit redelivering the webhook for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from friday.dispatcher.v1.dispatcher_service_pb2 import DispatchAgentRequest, DispatchAgentResponse
from friday.persona.v1.persona_pb2 import PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason, GetPersonaResponse
from services.common import call_facts, job_metadata
from services.common.default_persona import default_persona
from services.common.log_safety import loggable
from services.common.versions import content_version
from services.webhook_gateway.dedupe import EventLedger
from services.webhook_gateway.errors import UpstreamError
from services.webhook_gateway.events import SipCall

logger = logging.getLogger(__name__)

# Time kept back from the persona lookup so the dispatch always gets a chance.
_DISPATCH_RESERVE_SECONDS = 0.5


class PersonaLookup(Protocol):
    async def get_persona(
        self, dialed_number: str, *, caller_number: str, timeout: float, trace_id: str
    ) -> GetPersonaResponse: ...


class AgentDispatcher(Protocol):
    async def dispatch(
        self, request: DispatchAgentRequest, *, timeout: float, trace_id: str
    ) -> DispatchAgentResponse: ...

    async def trunk_numbers(self, trunk_id: str, *, timeout: float, trace_id: str) -> list[str]: ...


# DispatcherService's ErrorInfo reasons that the gateway acts on.
ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
# After these a redelivery helps once something changes; LiveKit honours Retry-After on
# 503, so say when (its own backoff would try again after 1 s, then 2, 4, 8).
_RETRY_AFTER_SECONDS = {
    "NO_AGENT_WORKER": 2,  # a worker restarting or scaling up takes seconds
    "DISPATCH_IN_PROGRESS": 1,  # another request is finishing the dispatch right now
}


@dataclass(frozen=True)
class Dispatched:
    dispatch_id: str
    already_existed: bool
    persona_id: str
    persona_name: str
    persona_source: str  # PersonaSource name
    default_reason: str  # why the default persona was used; empty when it was not
    # For the call's record (call_events.from_dispatch): the persona's content hash and the job's id.
    persona_version: str = ""
    job_id: str = ""


@dataclass(frozen=True)
class Duplicate:
    """The event already produced a dispatch (a redelivery or a second webhook URL)."""

    reason: str = "event already dispatched"


@dataclass(frozen=True)
class RoomGone:
    """The room no longer exists: the caller hung up before the webhook got here."""

    reason: str


@dataclass(frozen=True)
class DispatchFailed:
    retryable: bool
    reason: str
    # The dispatcher judged the request itself invalid: no redelivery can succeed.
    invalid_request: bool = False
    # When a redelivery is worth trying (seconds), where the failure says so.
    retry_after_seconds: int | None = None


class CallFlow:
    def __init__(
        self,
        personas: PersonaLookup,
        dispatcher: AgentDispatcher,
        ledger: EventLedger,
        *,
        agent_name: str,
        budget_seconds: float,
        persona_timeout_seconds: float,
        count_dropped_fact: Callable[[str], None] = lambda fact: None,
    ) -> None:
        self._personas = personas
        self._dispatcher = dispatcher
        self._ledger = ledger
        self._agent_name = agent_name
        self._budget = budget_seconds
        self._persona_timeout = persona_timeout_seconds
        self._count_dropped_fact = count_dropped_fact

    async def handle(self, call: SipCall) -> Dispatched | Duplicate | RoomGone | DispatchFailed:
        # Concurrent duplicates that race past this check are harmless: DispatcherService
        # guarantees one dispatch per call; the ledger only saves the work.
        if call.event_id and await self._ledger.seen(call.event_id):
            return Duplicate()
        if call.refused:
            # Reported once per processed delivery; the call goes on without those facts.
            call_facts.report(list(call.refused), where=f"room {loggable(call.room)}", count=self._count_dropped_fact)
        deadline = time.monotonic() + self._budget
        request = DispatchAgentRequest(room=call.room, agent_name=self._agent_name)
        # Built where it is sent: a message given to the request's constructor is deep-copied.
        metadata = request.metadata
        default_reason = await self._fill_job_metadata(metadata, call, deadline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return DispatchFailed(retryable=True, reason="budget exhausted before dispatch")
        try:
            response = await self._dispatcher.dispatch(request, timeout=remaining, trace_id=call.event_id)
        except UpstreamError as exc:
            if exc.reason == ROOM_NOT_FOUND:
                # Acknowledged: five redeliveries could only find the same empty room.
                return RoomGone(f"room {call.room} is gone (the call ended before its agent): {exc}")
            logger.warning("dispatch failed for room %s: %s", call.room, exc)
            return DispatchFailed(
                retryable=exc.retryable,
                reason=f"{exc.service}: {exc}",
                invalid_request=exc.invalid_request,
                retry_after_seconds=_RETRY_AFTER_SECONDS.get(exc.reason) if exc.retryable else None,
            )
        # Remembered only once the dispatch exists, so a redelivery after a failure is processed.
        if call.event_id:
            await self._ledger.remember(call.event_id)
        if response.already_existed:
            # The agent runs with what the existing dispatch carries, which may differ from
            # what this (redelivered) webhook looked up: report that.
            metadata, default_reason = _existing(response, metadata, default_reason)
        return Dispatched(
            dispatch_id=response.dispatch.dispatch_id,
            already_existed=response.already_existed,
            persona_id=metadata.persona.persona_id,
            persona_name=metadata.persona.display_name,
            persona_source=PersonaSource.Name(metadata.persona_source),
            default_reason=default_reason,
            # PersonaService stamps every persona; one from an older service may lack it.
            persona_version=metadata.persona.version or content_version(metadata.persona),
            job_id=response.job.job_id if response.HasField("job") else "",
        )

    async def _fill_job_metadata(self, metadata: AgentJobMetadata, call: SipCall, deadline: float) -> str:
        """Fills the (empty) job metadata for the call; returns why it carries the default
        persona ("" if not)."""
        found, default_reason = await self._lookup(call, deadline)
        metadata.schema_version = job_metadata.CURRENT_SCHEMA_VERSION
        facts = metadata.call
        # PersonaService's E.164 form when it gave one, else as LiveKit sent it.
        facts.dialed_number = (found.normalized_number if found is not None else "") or call.dialed_number
        facts.caller_number = call.caller_number
        facts.sip_call_id = call.sip_call_id
        facts.sip_trunk_id = call.sip_trunk_id
        facts.room = call.room if call_facts.accepted(call_facts.ROOM, call.room) else ""
        facts.participant_identity = call.participant_identity
        metadata.trace_id = call.event_id
        if found is not None:
            metadata.persona.CopyFrom(found.persona)
            metadata.persona_source = found.source
            if found.HasField("selection"):
                metadata.selection.CopyFrom(found.selection)
            if found.HasField("action"):
                metadata.action.CopyFrom(found.action)
            try:
                # LiveKit's metadata limit, checked here where the default can still be swapped in.
                job_metadata.check_size(metadata)
                return default_reason
            except job_metadata.JobMetadataError as exc:
                default_reason = f"persona refused: {exc}"
        logger.warning("dispatching room %s with the default persona: %s", call.room, default_reason)
        metadata.persona.CopyFrom(default_persona())
        metadata.persona_source = PersonaSource.PERSONA_SOURCE_DEFAULT
        # The campaign's choice was refused with its persona; the default carries no action.
        metadata.ClearField("selection")
        metadata.ClearField("action")
        return default_reason

    async def _lookup(self, call: SipCall, deadline: float) -> tuple[GetPersonaResponse | None, str]:
        dialed = call.dialed_number
        if not dialed:
            dialed, why_not = await self._dialed_through_trunk(call, deadline)
            if not dialed:
                return None, why_not
        timeout = min(self._persona_timeout, deadline - time.monotonic() - _DISPATCH_RESERVE_SECONDS)
        if timeout <= 0:
            return None, "no time left for the persona lookup"
        try:
            found = await self._personas.get_persona(
                dialed, caller_number=call.caller_number, timeout=timeout, trace_id=call.event_id
            )
        except UpstreamError as exc:
            return None, f"PersonaService: {exc}"
        if found.source != PersonaSource.PERSONA_SOURCE_DEFAULT:
            return found, ""
        return found, _default_reason_text(found.default_reason)

    async def _dialed_through_trunk(self, call: SipCall, deadline: float) -> tuple[str, str]:
        """When the dispatch rule hides numbers, the trunk the call came in on still
        says what was dialed if it has exactly one number. (number, "") or ("", why not)."""
        hidden = "dialed number hidden (no sip.trunkPhoneNumber)"
        if not call.sip_trunk_id:
            return "", f"{hidden} and no sip.trunkID"
        timeout = min(self._persona_timeout, deadline - time.monotonic() - _DISPATCH_RESERVE_SECONDS) / 2
        if timeout <= 0:
            return "", f"{hidden}; no time left to read trunk {call.sip_trunk_id}"
        try:
            numbers = await self._dispatcher.trunk_numbers(call.sip_trunk_id, timeout=timeout, trace_id=call.event_id)
        except UpstreamError as exc:
            return "", f"{hidden}; trunk {call.sip_trunk_id} unreadable: {exc}"
        if len(numbers) != 1:
            return "", f"{hidden} and trunk {call.sip_trunk_id} has {len(numbers)} numbers, not one"
        return numbers[0], ""


def _default_reason_text(reason: DefaultReason.ValueType) -> str:
    why = _DEFAULT_REASONS.get(reason, "no reason given")
    return f"PersonaService answered with its default persona ({why})"


_DEFAULT_REASONS: dict[DefaultReason.ValueType, str] = {
    DefaultReason.DEFAULT_REASON_NOT_FOUND: "no persona for the number",
    DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE: "CRM unavailable",
    DefaultReason.DEFAULT_REASON_DEADLINE_EXCEEDED: "out of time",
    DefaultReason.DEFAULT_REASON_SOURCE_INVALID: "CRM answer refused",
    DefaultReason.DEFAULT_REASON_NO_VARIANT: "the number's campaign chose no variant for this call",
}


def _existing(
    response: DispatchAgentResponse, requested: AgentJobMetadata, default_reason: str
) -> tuple[AgentJobMetadata, str]:
    if not response.dispatch.HasField("job_metadata"):
        return requested, default_reason  # not ours to read; report what we asked for
    existing = response.dispatch.job_metadata
    if existing.persona_source == PersonaSource.PERSONA_SOURCE_DEFAULT:
        return existing, "the call was already dispatched with the default persona"
    return existing, ""
