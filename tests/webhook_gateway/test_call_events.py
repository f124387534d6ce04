"""Which webhooks are call lifecycle facts, and what each reports (call_events.py)."""

from __future__ import annotations

from friday.calls.v1.call_pb2 import CallEventKind
from friday.persona.v1.persona_pb2 import Persona
from services.calls.records import millis
from services.common.versions import content_version as persona_version
from services.testing import livekit_webhooks as webhooks
from services.webhook_gateway.call_events import from_dispatch, from_webhook
from services.webhook_gateway.call_flow import Dispatched
from services.webhook_gateway.events import SipCall

AGENT = "friday-ai-agent"


def test_sip_join_starts_the_call_at_the_participants_join_time() -> None:
    event = webhooks.sip_participant_joined(
        room="call-a",
        dialed_number="+918655701159",
        caller_number="+14155550123",
        created_at=1_760_000_001,
        joined_at_ms=1_760_000_000_250,
    )
    reported = from_webhook(event, agent_name=AGENT)
    assert reported is not None
    assert reported.kind == CallEventKind.CALL_EVENT_KIND_SIP_JOINED
    assert reported.event_id == event.id and reported.room == "call-a"
    assert millis(reported.occurred_at) == 1_760_000_000_250
    assert reported.sip.dialed_number == "+918655701159"
    assert reported.sip.caller_number == "+14155550123"
    assert reported.sip.sip_call_id == event.participant.attributes["sip.callID"]


def test_our_agent_joining_answers_another_agent_does_not() -> None:
    ours = from_webhook(
        webhooks.agent_participant_joined(room="call-a", joined_at_ms=1_760_000_001_500), agent_name=AGENT
    )
    assert ours is not None and ours.kind == CallEventKind.CALL_EVENT_KIND_AGENT_JOINED
    assert millis(ours.occurred_at) == 1_760_000_001_500
    assert ours.agent_identity.startswith("agent-")
    other = webhooks.agent_participant_joined(room="call-a", agent_name="transcriber")
    assert from_webhook(other, agent_name=AGENT) is None


def test_the_caller_leaving_and_the_room_closing_end_the_call() -> None:
    joined = webhooks.sip_participant_joined(room="call-a", dialed_number="+918655701159")
    left = from_webhook(webhooks.sip_participant_left(joined, created_at=1_760_000_060), agent_name=AGENT)
    assert left is not None and left.kind == CallEventKind.CALL_EVENT_KIND_SIP_LEFT
    assert millis(left.occurred_at) == 1_760_000_060_000
    assert left.end.disconnect_reason == "CLIENT_INITIATED"
    aborted = webhooks.sip_participant_left(joined, event="participant_connection_aborted")
    reported = from_webhook(aborted, agent_name=AGENT)
    assert reported is not None and reported.kind == CallEventKind.CALL_EVENT_KIND_SIP_CONNECTION_ABORTED
    finished = from_webhook(webhooks.room_finished(room="call-a"), agent_name=AGENT)
    assert finished is not None and finished.kind == CallEventKind.CALL_EVENT_KIND_ROOM_FINISHED


def test_events_that_are_no_call_fact_report_nothing() -> None:
    outbound = webhooks.sip_outbound_participant_joined(room="call-a", called_number="+14155550199")
    assert from_webhook(outbound, agent_name=AGENT) is None
    assert from_webhook(webhooks.standard_participant_joined(room="call-a"), agent_name=AGENT) is None
    assert from_webhook(webhooks.room_started(room="call-a"), agent_name=AGENT) is None
    nameless = webhooks.sip_participant_joined(room="call-a", dialed_number="+918655701159")
    nameless.id = ""
    assert from_webhook(nameless, agent_name=AGENT) is None


def test_dispatch_facts_carry_the_persona_version() -> None:
    call = SipCall(
        event_id="EV_join",
        room="call-a",
        participant_identity="sip_+1",
        dialed_number="+1",
        caller_number="+1",
        sip_call_id="SCL_x",
        sip_trunk_id="ST_x",
    )
    persona = Persona(persona_id="xeny", display_name="Asha")
    outcome = Dispatched(
        dispatch_id="AD_x",
        already_existed=False,
        persona_id="xeny",
        persona_name="Asha",
        persona_source="PERSONA_SOURCE_CRM",
        default_reason="",
        persona_version=persona_version(persona),
        job_id="AJ_x",
    )
    reported = from_dispatch(call, outcome)
    assert reported is not None
    assert reported.event_id == "dispatch:EV_join"
    assert reported.dispatch.persona_version.startswith("sha256:") and len(reported.dispatch.persona_version) == 23
    assert reported.dispatch.job_id == "AJ_x"
    changed = Persona(persona_id="xeny", display_name="Asha v2")
    assert persona_version(changed) != persona_version(persona)


def test_a_disconnect_reason_newer_than_our_protocol_copy_is_kept_as_its_number() -> None:
    joined = webhooks.sip_participant_joined(room="call-a", dialed_number="+918655701159")
    left = webhooks.sip_participant_left(joined, disconnect_reason=999)
    reported = from_webhook(left, agent_name=AGENT)
    assert reported is not None and reported.end.disconnect_reason == "999"
