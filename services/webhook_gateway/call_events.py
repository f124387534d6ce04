"""Which webhooks are call lifecycle facts, and the CallEvent each becomes (the gateway
reports them to CallHistoryService; services/webhook_gateway/call_reporter.py). Times are
LiveKit's: a participant's joinedAtMs (joinedAt, else the webhook's createdAt) for joins,
the webhook's createdAt for endings. Free of HTTP and gRPC, like events.py.

    participant_joined, SIP, inbound             → SIP_JOINED (call started)
    participant_joined, AGENT (our agent name)   → AGENT_JOINED (answered)
    participant_left / _connection_aborted, SIP  → SIP_LEFT / SIP_CONNECTION_ABORTED (ended)
    room_finished                                → ROOM_FINISHED (ended)
    the gateway's own dispatch result            → DISPATCHED (persona, version, source, ids)
"""

from __future__ import annotations

import time

from livekit.protocol.models import DisconnectReason, ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from friday.calls.v1.call_pb2 import CallEvent, CallEventKind, DispatchFacts, EndFacts, SipFacts
from services.common.livekit_names import SipAttribute
from services.webhook_gateway.call_flow import Dispatched
from services.webhook_gateway.events import SipCall

_AGENT_NAME_ATTRIBUTE = "lk.agent_name"
_SIP_ENDINGS = {
    "participant_left": CallEventKind.CALL_EVENT_KIND_SIP_LEFT,
    "participant_connection_aborted": CallEventKind.CALL_EVENT_KIND_SIP_CONNECTION_ABORTED,
}


def _joined_ms(participant: ParticipantInfo, event: WebhookEvent) -> int:
    if participant.joined_at_ms:
        return participant.joined_at_ms
    return (participant.joined_at or event.created_at) * 1000


def _reason_name(reason: int) -> str:
    # A reason newer than our copy of LiveKit's protocol arrives as a bare number.
    return DisconnectReason.Name(reason) if reason in _REASONS else str(reason)


_REASONS = set(DisconnectReason.values())


def _inbound_sip(participant: ParticipantInfo) -> bool:
    # As events.classify: an outbound leg has no dispatch rule and joins "dialing".
    attributes = participant.attributes
    return (
        participant.kind == ParticipantInfo.Kind.SIP
        and bool(attributes.get(SipAttribute.RULE_ID, "").strip())
        and attributes.get(SipAttribute.CALL_STATUS, "").strip() != "dialing"
    )


def _sip_facts(participant: ParticipantInfo) -> SipFacts:
    attributes = participant.attributes
    return SipFacts(
        dialed_number=attributes.get(SipAttribute.TRUNK_PHONE_NUMBER, "").strip(),
        caller_number=attributes.get(SipAttribute.PHONE_NUMBER, "").strip(),
        sip_call_id=attributes.get(SipAttribute.CALL_ID, "").strip(),
        sip_trunk_id=attributes.get(SipAttribute.TRUNK_ID, "").strip(),
        participant_identity=participant.identity,
    )


def from_webhook(event: WebhookEvent, *, agent_name: str) -> CallEvent | None:
    """The call fact a verified webhook carries, or None when it carries none."""
    room = event.room.name
    if not event.id or not room:
        return None  # without an id there is no idempotent recording; without a room, no call
    participant = event.participant
    call_event = CallEvent(event_id=event.id, room=room)
    if event.event == "participant_joined" and _inbound_sip(participant):
        call_event.kind = CallEventKind.CALL_EVENT_KIND_SIP_JOINED
        call_event.sip.CopyFrom(_sip_facts(participant))
        at_ms = _joined_ms(participant, event)
    elif event.event == "participant_joined" and participant.kind == ParticipantInfo.Kind.AGENT:
        named = participant.attributes.get(_AGENT_NAME_ATTRIBUTE, "")
        if named and named != agent_name:
            return None  # another agent in the room (a transcriber, a supervisor): not our answer
        call_event.kind = CallEventKind.CALL_EVENT_KIND_AGENT_JOINED
        call_event.agent_identity = participant.identity
        at_ms = _joined_ms(participant, event)
    elif event.event in _SIP_ENDINGS and _inbound_sip(participant):
        call_event.kind = _SIP_ENDINGS[event.event]
        call_event.sip.CopyFrom(_sip_facts(participant))
        if participant.disconnect_reason:
            call_event.end.CopyFrom(EndFacts(disconnect_reason=_reason_name(participant.disconnect_reason)))
        at_ms = event.created_at * 1000
    elif event.event == "room_finished":
        call_event.kind = CallEventKind.CALL_EVENT_KIND_ROOM_FINISHED
        at_ms = event.created_at * 1000
    else:
        return None
    if at_ms <= 0:
        return None  # LiveKit always stamps its events; one without a time cannot be placed in a call
    call_event.occurred_at.FromMilliseconds(at_ms)
    return call_event


def from_dispatch(call: SipCall, outcome: Dispatched) -> CallEvent | None:
    """The dispatch the gateway made sure of, for the call's record."""
    if not call.event_id:
        return None
    event = CallEvent(
        event_id=f"dispatch:{call.event_id}",
        kind=CallEventKind.CALL_EVENT_KIND_DISPATCHED,
        room=call.room,
        dispatch=DispatchFacts(
            persona_id=outcome.persona_id,
            persona_version=outcome.persona_version,
            persona_source=outcome.persona_source,
            default_reason=outcome.default_reason,
            dispatch_id=outcome.dispatch_id,
            job_id=outcome.job_id,
            already_existed=outcome.already_existed,
        ),
    )
    # Our clock: when the dispatch was confirmed orders dispatch facts, never answer times.
    event.occurred_at.FromNanoseconds(time.time_ns())
    return event
