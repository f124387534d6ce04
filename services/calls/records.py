"""A call's record is a pure function of its events (`fold`): the same set of events
gives the same record whatever order they arrived in and however often, which is what
makes recording correct under LiveKit's retries and several gateways. Times are
LiveKit's (participant joinedAt, webhook createdAt), never the recorder's clock; the
only use of "now" is deciding that an agent is overdue (no_agent).

    started   = the earliest SIP join          answered = the earliest agent join
    ended     = the earliest SIP leave / aborted connection / room close
    outcome   = answered   agent joined within no_agent_seconds of the start
                abandoned  the caller left first, inside no_agent_seconds
                no_agent   neither within no_agent_seconds (now, or by the events' times)
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from friday.calls.v1.call_pb2 import Call, CallEvent, CallEventKind, CallOutcome, DispatchFacts
from services.calls.config import CallerNumbers

_END_KINDS = (
    CallEventKind.CALL_EVENT_KIND_SIP_LEFT,
    CallEventKind.CALL_EVENT_KIND_SIP_CONNECTION_ABORTED,
    CallEventKind.CALL_EVENT_KIND_ROOM_FINISHED,
)
# Webhook createdAt has whole seconds only: an end stamped in the same second as an
# agent join may really come after it.
_END_PRECISION_MS = 999

OUTCOME_LABELS = {
    CallOutcome.CALL_OUTCOME_ANSWERED: "answered",
    CallOutcome.CALL_OUTCOME_NO_AGENT: "no_agent",
    CallOutcome.CALL_OUTCOME_ABANDONED: "abandoned",
}


def millis(timestamp: Timestamp) -> int:
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000


def timestamp_of(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _order(event: CallEvent) -> tuple[int, int, str]:
    return (millis(event.occurred_at), int(event.kind), event.event_id)


def fold(events: Iterable[CallEvent], *, no_agent_seconds: float, now_ms: int) -> Call:
    ordered = sorted(events, key=_order)
    call = Call()
    if ordered:
        call.room = ordered[0].room
    joins = [e for e in ordered if e.kind == CallEventKind.CALL_EVENT_KIND_SIP_JOINED]
    ends = [e for e in ordered if e.kind in _END_KINDS]
    dispatches = [e for e in ordered if e.kind == CallEventKind.CALL_EVENT_KIND_DISPATCHED]
    end_ms = millis(ends[0].occurred_at) if ends else None
    agents = [
        e
        for e in ordered
        if e.kind == CallEventKind.CALL_EVENT_KIND_AGENT_JOINED
        and (end_ms is None or millis(e.occurred_at) <= end_ms + _END_PRECISION_MS)
    ]
    if dispatches:
        # The dispatch that created the agent, when it was seen; a found one otherwise.
        first = next((e for e in dispatches if not e.dispatch.already_existed), dispatches[0])
        call.dispatch.CopyFrom(first.dispatch)
        if not call.dispatch.job_id:
            call.dispatch.job_id = next((e.dispatch.job_id for e in dispatches if e.dispatch.job_id), "")
    if joins:
        sip = joins[0].sip
        call.sip_call_id = sip.sip_call_id
        call.dialed_number = sip.dialed_number
        call.caller_number = sip.caller_number
        call.started_at.CopyFrom(joins[0].occurred_at)
    if agents:
        call.answered_at.CopyFrom(agents[0].occurred_at)
        call.agent_identity = agents[0].agent_identity
    if ends:
        end = ends[0]
        call.ended_at.CopyFrom(end.occurred_at)
        reason = CallEventKind.Name(end.kind).removeprefix("CALL_EVENT_KIND_")
        if end.end.disconnect_reason:
            reason += f" {end.end.disconnect_reason}"
        call.end_reason = reason
    if not joins:
        return call  # not a call (yet): its SIP join may still arrive
    start_ms = millis(call.started_at)
    limit_ms = start_ms + round(no_agent_seconds * 1000)
    if agents:
        call.answer_seconds = max(0, millis(call.answered_at) - start_ms) / 1000
    if ends:
        call.duration_seconds = max(0, millis(call.ended_at) - start_ms) / 1000
    if agents and millis(call.answered_at) <= limit_ms:
        call.outcome = CallOutcome.CALL_OUTCOME_ANSWERED
    elif end_ms is not None and end_ms < limit_ms:
        call.outcome = CallOutcome.CALL_OUTCOME_ABANDONED
    elif agents or end_ms is not None or now_ms >= limit_ms:
        call.outcome = CallOutcome.CALL_OUTCOME_NO_AGENT
    return call


def is_final(call: Call) -> bool:
    return call.outcome != CallOutcome.CALL_OUTCOME_UNSPECIFIED


def mask_number(number: str) -> str:
    """Keeps the last four digits ("+*******0100"): enough to tell calls apart, not to call back."""
    digits = [i for i, ch in enumerate(number) if ch.isdigit()]
    hidden = set(digits[:-4]) if len(digits) > 4 else set(digits)
    return "".join("*" if i in hidden else ch for i, ch in enumerate(number))


def private(event: CallEvent, caller_numbers: CallerNumbers) -> CallEvent:
    """The event as it may be stored: the caller's number masked, also where livekit/sip
    put it into the participant's identity (`sip_+14155550100`)."""
    if caller_numbers is CallerNumbers.FULL or not event.sip.caller_number:
        return event
    stored = CallEvent()
    stored.CopyFrom(event)
    number = event.sip.caller_number
    stored.sip.caller_number = mask_number(number)
    stored.sip.participant_identity = event.sip.participant_identity.replace(number, stored.sip.caller_number)
    return stored


def uses_default(dispatch: DispatchFacts) -> bool:
    return dispatch.persona_source == "PERSONA_SOURCE_DEFAULT"
