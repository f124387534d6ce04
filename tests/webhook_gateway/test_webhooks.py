"""The gateway end to end: signed LiveKit webhooks in, LiveKit dispatches out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from friday.persona.v1.persona_pb2 import PersonaSource
from services.chaos.redelivery import WebhookSender
from services.common import job_metadata
from services.testing.livekit_webhooks import (
    agent_participant_joined,
    event_body,
    room_started,
    sign,
    sip_participant_joined,
    standard_participant_joined,
)
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_SECRET, Mesh
from tests.webhook_gateway.conftest import CRM_SEGMENT, DIALED


def _sip_join(room: str = "call-1", dialed: str | None = DIALED, **kwargs):
    return sip_participant_joined(room=room, dialed_number=dialed, caller_number="+14155550123", **kwargs)


def _only_dispatch(mesh: Mesh, room: str):
    dispatches = mesh.livekit.dispatches(room)
    assert len(dispatches) == 1, dispatches
    return dispatches[0], job_metadata.decode(dispatches[0].metadata)


async def test_sip_join_dispatches_one_agent_with_the_crm_persona(mesh: Mesh) -> None:
    event = _sip_join(call_id="SCL_abc", trunk_id="ST_trunk")

    response = await mesh.deliver(event)

    assert response.status_code == 200, response.text
    answer = response.json()
    dispatch, metadata = _only_dispatch(mesh, "call-1")
    assert answer["dispatch_id"] == dispatch.id
    assert answer["persona_source"] == "PERSONA_SOURCE_CRM"
    assert dispatch.agent_name == "friday-ai-agent"
    assert metadata.persona.display_name == "Asha (CRM)"
    assert metadata.persona.welcome_message == "Namaste from the CRM"
    assert metadata.persona_source == PersonaSource.PERSONA_SOURCE_CRM
    assert metadata.call.dialed_number == DIALED
    assert metadata.call.caller_number == "+14155550123"
    assert metadata.call.sip_call_id == "SCL_abc"
    assert metadata.call.sip_trunk_id == "ST_trunk"
    assert metadata.call.room == "call-1"
    assert metadata.trace_id == event.id
    assert mesh.crm.requests_for(CRM_SEGMENT) == 1


async def test_events_that_must_not_dispatch_are_acknowledged_and_ignored(mesh: Mesh) -> None:
    for event in (
        agent_participant_joined(room="call-2"),
        standard_participant_joined(room="call-2"),
        room_started(room="call-2"),
    ):
        response = await mesh.deliver(event)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ignored"
    assert mesh.livekit.all_dispatches() == []
    assert mesh.crm.total_requests == 0


async def test_bad_signatures_are_401_and_dispatch_nothing(mesh: Mesh) -> None:
    body = event_body(_sip_join())
    good = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET)
    tampered = body.replace(b"call-1", b"call-X")
    cases = {
        "tampered body": (tampered, good),
        "wrong secret": (body, sign(body, WEBHOOK_KEY, "another-secret-that-is-long-enough-32b")),
        "wrong key": (body, sign(body, "APIsomeoneelse", WEBHOOK_SECRET)),
        "expired token": (
            body,
            sign(body, WEBHOOK_KEY, WEBHOOK_SECRET, issued_at=datetime.now(UTC) - timedelta(minutes=10)),
        ),
        "no header": (body, {"Content-Type": "application/webhook+json"}),
        "garbage token": (body, {**good, "Authorization": "not-a-jwt"}),
    }
    for name, (payload, headers) in cases.items():
        response = await mesh.post(payload, headers)
        assert response.status_code == 401, (name, response.text)
    assert mesh.livekit.all_dispatches() == []
    assert mesh.crm.total_requests == 0


async def test_oversize_body_is_413_and_non_json_is_400(mesh: Mesh) -> None:
    big = b'{"event":"participant_joined","pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = await mesh.post(big, sign(big, WEBHOOK_KEY, WEBHOOK_SECRET))
    assert response.status_code == 413

    not_json = b"this is not json"
    response = await mesh.post(not_json, sign(not_json, WEBHOOK_KEY, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert "WebhookEvent" in response.json()["detail"]

    assert mesh.livekit.all_dispatches() == []


async def test_plain_json_content_type_is_accepted_and_others_are_not(mesh: Mesh) -> None:
    mesh.livekit.create_room("call-json")  # the caller is in it before LiveKit sends the join
    body = event_body(_sip_join(room="call-json"))
    headers = {**sign(body, WEBHOOK_KEY, WEBHOOK_SECRET), "Content-Type": "application/json"}
    assert (await mesh.post(body, headers)).status_code == 200
    headers["Content-Type"] = "text/plain"
    assert (await mesh.post(body, headers)).status_code == 415
    assert len(mesh.livekit.dispatches("call-json")) == 1


async def test_unknown_fields_from_newer_livekit_are_ignored(mesh: Mesh) -> None:
    mesh.livekit.create_room("call-new")
    document = json.loads(event_body(_sip_join(room="call-new")))
    document["someFutureField"] = {"x": 1}
    document["participant"]["futureParticipantField"] = "y"
    body = json.dumps(document).encode()
    response = await mesh.post(body, sign(body, WEBHOOK_KEY, WEBHOOK_SECRET))
    assert response.status_code == 200, response.text
    assert len(mesh.livekit.dispatches("call-new")) == 1


async def test_same_event_delivered_three_times_dispatches_once(mesh: Mesh) -> None:
    mesh.livekit.create_room("call-dup")
    body = event_body(_sip_join(room="call-dup"))
    headers = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET)
    answers = [await mesh.post(body, headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["status"] for a in answers] == ["dispatched", "ignored", "ignored"]
    assert len(mesh.livekit.dispatches("call-dup")) == 1
    assert mesh.livekit.create_count() == 1


async def test_concurrent_duplicates_still_end_with_one_dispatch(mesh: Mesh) -> None:
    mesh.livekit.create_room("call-race")
    body = event_body(_sip_join(room="call-race"))
    headers = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET)
    answers = await asyncio.gather(*(mesh.post(body, headers) for _ in range(10)))
    assert all(a.status_code == 200 for a in answers)
    assert len(mesh.livekit.dispatches("call-race")) == 1


async def test_persona_service_down_dispatches_with_the_default_persona(mesh: Mesh) -> None:
    await mesh.stop_persona()

    response = await mesh.deliver(_sip_join(room="call-nopersona"))

    assert response.status_code == 200, response.text
    assert response.json()["persona_source"] == "PERSONA_SOURCE_DEFAULT"
    assert "PersonaService" in response.json()["default_reason"]
    _, metadata = _only_dispatch(mesh, "call-nopersona")
    assert metadata.persona_source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert metadata.persona.persona_id == "default"
    assert metadata.call.dialed_number == DIALED


async def test_dispatcher_down_is_503_and_the_redelivery_dispatches_once(mesh: Mesh) -> None:
    await mesh.stop_dispatcher()
    mesh.livekit.create_room("call-redeliver")
    # LiveKit's delivery: the same bytes again after 1, 2, 4, 8 s while the answer is a 5xx.
    sender = WebhookSender(mesh.http, mesh.webhook_url, WEBHOOK_KEY, WEBHOOK_SECRET)
    delivering = sender.queue(_sip_join(room="call-redeliver"))
    failed = 'friday_gateway_webhooks_total{event="participant_joined",outcome="dispatch_failed"} 1.0'
    for _ in range(200):  # until the first attempt was answered
        if failed in (await mesh.http.get(f"{mesh.gateway_url}/metrics")).text:
            break
        await asyncio.sleep(0.05)
    assert mesh.livekit.all_dispatches() == []

    await mesh.start_dispatcher()
    delivery = await delivering
    await sender.aclose()
    # The gateway's channel may still be in reconnect backoff on the first redelivery.
    assert delivery.statuses[0] == 503 and delivery.delivered, delivery.statuses
    assert len(mesh.livekit.dispatches("call-redeliver")) == 1


async def test_livekit_503_once_is_retried_to_one_dispatch(mesh: Mesh) -> None:
    mesh.livekit.fail_next(1, status=503)
    response = await mesh.deliver(_sip_join(room="call-flaky"))
    assert response.status_code == 200, response.text
    assert len(mesh.livekit.dispatches("call-flaky")) == 1


async def test_hidden_dialed_number_dispatches_the_default_persona(mesh: Mesh) -> None:
    response = await mesh.deliver(_sip_join(room="call-hidden", dialed=None, hide_numbers=True))
    assert response.status_code == 200, response.text
    assert "hidden" in response.json()["default_reason"]
    _, metadata = _only_dispatch(mesh, "call-hidden")
    assert metadata.persona_source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert metadata.call.dialed_number == ""
    assert mesh.crm.total_requests == 0


async def test_ready_follows_the_upstreams(mesh: Mesh) -> None:
    assert (await mesh.http.get(f"{mesh.gateway_url}/health")).status_code == 200
    ready = await mesh.http.get(f"{mesh.gateway_url}/ready")
    assert ready.status_code == 200, ready.text

    await mesh.stop_dispatcher()

    not_ready = await mesh.http.get(f"{mesh.gateway_url}/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["upstreams"] == {"persona": True, "dispatcher": False}


async def test_metrics_count_outcomes_sources_and_duplicates(mesh: Mesh) -> None:
    mesh.livekit.create_room("call-metrics")
    body = event_body(_sip_join(room="call-metrics"))
    headers = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET)
    await mesh.post(body, headers)
    await mesh.post(body, headers)
    await mesh.deliver(agent_participant_joined(room="call-metrics"))

    text = (await mesh.http.get(f"{mesh.gateway_url}/metrics")).text

    assert 'friday_gateway_webhooks_total{event="participant_joined",outcome="dispatched"} 1.0' in text
    assert 'friday_gateway_webhooks_total{event="participant_joined",outcome="duplicate"} 1.0' in text
    assert 'friday_gateway_webhooks_total{event="participant_joined",outcome="ignored"} 1.0' in text
    assert 'friday_gateway_persona_sources_total{source="PERSONA_SOURCE_CRM"} 1.0' in text
    assert "friday_gateway_duplicate_webhooks_total 1.0" in text
    assert "friday_gateway_dispatch_latency_seconds_count 1.0" in text


async def test_a_call_the_dispatcher_rejects_as_invalid_is_4xx_so_livekit_does_not_retry(mesh: Mesh) -> None:
    response = await mesh.deliver(_sip_join(room="r" * 300))
    assert response.status_code == 422, response.text
    assert "INVALID_ARGUMENT" in response.json()["detail"]
    assert mesh.livekit.all_dispatches() == []


async def test_an_existing_dispatch_is_reported_with_the_persona_it_actually_carries(mesh: Mesh) -> None:
    await mesh.stop_persona()
    first = await mesh.deliver(_sip_join(room="call-existing"))
    assert first.json()["persona_source"] == "PERSONA_SOURCE_DEFAULT"

    await mesh.start_persona()
    for _ in range(100):  # the gateway's channel reconnects with backoff
        if (await mesh.http.get(f"{mesh.gateway_url}/ready")).json()["upstreams"]["persona"]:
            break
        await asyncio.sleep(0.1)
    # Another delivery for the same call (e.g. from a second webhook URL) now finds the CRM
    # persona, but the agent already dispatched runs with the default: say so.
    again = await mesh.deliver(_sip_join(room="call-existing"))

    assert again.status_code == 200, again.text
    answer = again.json()
    assert answer["already_existed"] is True
    assert answer["dispatch_id"] == first.json()["dispatch_id"]
    assert answer["persona_source"] == "PERSONA_SOURCE_DEFAULT"
    assert "already dispatched with the default" in answer["default_reason"]
    assert mesh.crm.requests_for(CRM_SEGMENT) == 1  # the redelivery did look the persona up
    assert len(mesh.livekit.dispatches("call-existing")) == 1


async def test_a_campaign_number_dispatches_the_callers_variant_with_its_selection(mesh: Mesh) -> None:
    mesh.crm.set_persona(
        CRM_SEGMENT,
        {
            "campaign": {
                "id": "intl",
                "default_variant": "en",
                "variants": [
                    {"id": "hi", "match": {"regions": ["IN"]}, "persona": {"personality": "Speak Hindi."}},
                    {"id": "en", "persona": {"personality": "Speak English."}},
                    {
                        "id": "gb",
                        "match": {"prefixes": ["+44"]},
                        "action": {"type": "transfer", "message": "One moment.", "to": "+442079460958"},
                    },
                ],
            }
        },
    )
    calls = {"call-in": "+919876543210", "call-us": "+14155550123", "call-gb": "+447911123456"}
    for room, caller in calls.items():
        event = sip_participant_joined(room=room, dialed_number=DIALED, caller_number=caller)
        assert (await mesh.deliver(event)).status_code == 200
    metadata = {room: _only_dispatch(mesh, room)[1] for room in calls}
    assert metadata["call-in"].persona.personality == "Speak Hindi."
    assert metadata["call-in"].selection.variant_id == "hi" and metadata["call-in"].selection.campaign_id == "intl"
    assert metadata["call-us"].selection.variant_id == "en" and not metadata["call-us"].HasField("action")
    assert (
        metadata["call-gb"].action.transfer_to == "+442079460958"
        and metadata["call-gb"].action.message == "One moment."
    )
    assert mesh.crm.requests_for(CRM_SEGMENT) == 1
