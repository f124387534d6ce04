"""Call events as the gateway reports them, for the store and history tests."""

from __future__ import annotations

from friday.calls.v1.call_pb2 import CallEvent, CallEventKind, DispatchFacts, EndFacts, SipFacts
from services.calls.records import timestamp_of

T0 = 1_760_000_000_000  # the caller's join, LiveKit's clock (ms)


def sip_joined(room: str, at_ms: int = T0, event_id: str | None = None, caller: str = "+14155550123") -> CallEvent:
    return CallEvent(
        event_id=event_id or f"EV_{room}_join",
        kind=CallEventKind.CALL_EVENT_KIND_SIP_JOINED,
        room=room,
        occurred_at=timestamp_of(at_ms),
        sip=SipFacts(
            dialed_number="+918655701159",
            caller_number=caller,
            sip_call_id=f"SCL_{room}",
            sip_trunk_id="ST_trunk",
            participant_identity=f"sip_{caller}",
        ),
    )


def dispatched(
    room: str, at_ms: int = T0 + 200, *, already_existed: bool = False, source: str = "PERSONA_SOURCE_CRM", n: int = 0
) -> CallEvent:
    return CallEvent(
        event_id=f"dispatch:EV_{room}_join{n or ''}",
        kind=CallEventKind.CALL_EVENT_KIND_DISPATCHED,
        room=room,
        occurred_at=timestamp_of(at_ms),
        dispatch=DispatchFacts(
            persona_id="xeny-reception",
            persona_version="sha256:0123456789abcdef",
            persona_source=source,
            default_reason="" if source != "PERSONA_SOURCE_DEFAULT" else "CRM unavailable",
            dispatch_id=f"AD_{room}",
            job_id=f"AJ_{room}",
            already_existed=already_existed,
        ),
    )


def agent_joined(room: str, at_ms: int = T0 + 1500) -> CallEvent:
    return CallEvent(
        event_id=f"EV_{room}_agent",
        kind=CallEventKind.CALL_EVENT_KIND_AGENT_JOINED,
        room=room,
        occurred_at=timestamp_of(at_ms),
        agent_identity=f"agent-AJ_{room}",
    )


def sip_left(room: str, at_ms: int = T0 + 62_000, reason: str = "CLIENT_INITIATED") -> CallEvent:
    return CallEvent(
        event_id=f"EV_{room}_left",
        kind=CallEventKind.CALL_EVENT_KIND_SIP_LEFT,
        room=room,
        occurred_at=timestamp_of(at_ms),
        sip=SipFacts(sip_call_id=f"SCL_{room}"),
        end=EndFacts(disconnect_reason=reason),
    )


def room_finished(room: str, at_ms: int = T0 + 63_000) -> CallEvent:
    return CallEvent(
        event_id=f"EV_{room}_finished",
        kind=CallEventKind.CALL_EVENT_KIND_ROOM_FINISHED,
        room=room,
        occurred_at=timestamp_of(at_ms),
    )


def whole_call(room: str) -> list[CallEvent]:
    return [sip_joined(room), dispatched(room), agent_joined(room), sip_left(room), room_finished(room)]
