"""What a verified webhook asks of us: start a call's dispatch, or nothing.

Only `participant_joined` for a SIP participant starts a dispatch (docs/architecture.md, "LiveKit webhooks");
our own agent joining is a `participant_joined` of kind AGENT and must not.

The call facts are the caller's text (livekit/sip copies the INVITE's user parts
as they came): each is kept only in its real shape (services.common.call_facts);
one of the wrong shape is left out of the call and listed in `SipCall.refused`, and
the call is dispatched all the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.protocol.models import ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from services.common import call_facts
from services.common.livekit_names import SipAttribute


@dataclass(frozen=True)
class SipCall:
    """An inbound phone call that needs an agent."""

    event_id: str
    room: str  # where LiveKit put the caller: dispatched to as named, whatever its shape
    participant_identity: str
    dialed_number: str  # empty when the trunk hides it (or it was refused)
    caller_number: str
    sip_call_id: str
    sip_trunk_id: str
    # Facts dropped for their shape; the room is listed here when it is no fit name
    # for the job metadata (it is still dispatched to).
    refused: tuple[call_facts.Refused, ...] = ()


@dataclass(frozen=True)
class Ignored:
    """A webhook we deliberately do nothing with, and why (sent back to LiveKit)."""

    reason: str


def classify(event: WebhookEvent) -> SipCall | Ignored:
    if event.event != "participant_joined":
        return Ignored(f"event {event.event or '(none)'!r} does not start a dispatch")
    participant = event.participant
    if participant.kind != ParticipantInfo.Kind.SIP:
        kind = ParticipantInfo.Kind.Name(participant.kind) if participant.kind in _KIND_NAMES else str(participant.kind)
        return Ignored(f"participant kind {kind} is not SIP")
    room = event.room.name
    if not room:
        # A SIP join always happens in a room; without its name there is nothing to dispatch to.
        return Ignored("participant_joined without a room name")
    attributes = participant.attributes
    # Our own calls out and transfers are SIP participants too. livekit/sip marks an
    # inbound call with the dispatch rule that matched it; an outbound leg has none
    # and joins while it is still "dialing". Neither is a caller waiting for a persona.
    if not attributes.get(SipAttribute.RULE_ID, "").strip():
        return Ignored(f"outbound SIP participant (no {SipAttribute.RULE_ID}): not an inbound call")
    if attributes.get(SipAttribute.CALL_STATUS, "").strip() == "dialing":
        return Ignored(f"outbound SIP participant ({SipAttribute.CALL_STATUS} dialing): not an inbound call")
    refused: list[call_facts.Refused] = []

    def fact(name: str, raw: str) -> str:
        value, why = call_facts.check(name, raw)
        if why is not None:
            refused.append(why)
        return value

    # The rule id only marks the call inbound (above); a malformed one is reported, not carried.
    fact(call_facts.SIP_RULE_ID, attributes.get(SipAttribute.RULE_ID, "").strip())
    fact(call_facts.ROOM, room)
    return SipCall(
        event_id=event.id,
        room=room,
        participant_identity=fact(call_facts.PARTICIPANT_IDENTITY, participant.identity),
        dialed_number=fact(call_facts.DIALED_NUMBER, attributes.get(SipAttribute.TRUNK_PHONE_NUMBER, "").strip()),
        caller_number=fact(call_facts.CALLER_NUMBER, attributes.get(SipAttribute.PHONE_NUMBER, "").strip()),
        sip_call_id=fact(call_facts.SIP_CALL_ID, attributes.get(SipAttribute.CALL_ID, "").strip()),
        sip_trunk_id=fact(call_facts.SIP_TRUNK_ID, attributes.get(SipAttribute.TRUNK_ID, "").strip()),
        refused=tuple(refused),
    )


_KIND_NAMES = set(ParticipantInfo.Kind.values())
