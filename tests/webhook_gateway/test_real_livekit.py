"""The gateway against a LiveKit as the real server behaves: no worker for the agent
name, a room that is gone, a hidden dialed number, outbound SIP legs, carrier forms."""

from __future__ import annotations

import asyncio

from friday.persona.v1.persona_pb2 import PersonaSource
from services.chaos.redelivery import DeliveryPolicy, WebhookSender
from services.common import job_metadata
from services.common.livekit_names import DEFAULT_AGENT_NAME
from services.testing.livekit_webhooks import sip_outbound_participant_joined, sip_participant_joined
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_SECRET, Mesh
from tests.webhook_gateway.conftest import CRM_PERSONA, DIALED


def _join(room: str, dialed: str | None = DIALED, **kwargs):
    return sip_participant_joined(room=room, dialed_number=dialed, caller_number="+14155550123", **kwargs)


def _live_jobs(mesh: Mesh, room: str) -> list[int]:
    return [len(d.state.jobs) for d in mesh.livekit.dispatches(room)]


async def test_no_worker_is_a_503_in_budget_then_one_agent_once_a_worker_is_back(mesh: Mesh) -> None:
    mesh.livekit.workers.set_absent(DEFAULT_AGENT_NAME)
    event = _join("call-no-worker")
    mesh.livekit.create_room("call-no-worker")
    body, headers = mesh.signed_request(event)

    loop = asyncio.get_running_loop()
    started = loop.time()
    refused = await mesh.post(body, headers)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "2"
    assert "NO_AGENT_WORKER" in refused.text or "no agent worker" in refused.text
    assert loop.time() - started < mesh.gateway_config.budget_seconds + 0.5
    assert mesh.livekit.dispatches("call-no-worker") == []  # withdrawn, nothing left behind

    mesh.livekit.workers.register(DEFAULT_AGENT_NAME)
    redelivered = await mesh.post(body, headers)  # LiveKit re-sends the same bytes
    again = await mesh.post(body, headers)

    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json()["status"] == "dispatched"
    assert again.json()["status"] == "ignored"
    assert _live_jobs(mesh, "call-no-worker") == [1]


async def test_redelivery_through_livekits_delivery_model_saves_a_call_while_no_worker(mesh: Mesh) -> None:
    mesh.livekit.workers.set_absent(DEFAULT_AGENT_NAME)
    mesh.livekit.create_room("call-later")
    sender = WebhookSender(mesh.http, mesh.webhook_url, WEBHOOK_KEY, WEBHOOK_SECRET, DeliveryPolicy(time_scale=0.2))

    async def worker_comes_up() -> None:
        await asyncio.sleep(0.5)
        mesh.livekit.workers.register(DEFAULT_AGENT_NAME)

    try:
        arrival = asyncio.create_task(worker_comes_up())
        delivery = await sender.queue(_join("call-later"))
        await arrival
    finally:
        await sender.aclose()

    assert delivery.statuses[0] == 503 and delivery.final_status == 200
    assert _live_jobs(mesh, "call-later") == [1]


async def test_a_room_that_is_gone_is_acknowledged_once(mesh: Mesh) -> None:
    body, headers = mesh.signed_request(_join("call-hung-up"))  # no room: the caller hung up long ago

    response = await mesh.post(body, headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    assert "gone" in response.json()["detail"]
    assert mesh.livekit.create_count() == 0
    assert mesh.crm.total_requests <= 1  # the persona may have been looked up; no agent was sent


async def test_a_hidden_dialed_number_is_the_trunks_one_number(mesh: Mesh) -> None:
    mesh.livekit.add_inbound_trunk("ST_hotline", ["+918655701159"])

    response = await mesh.deliver(_join("call-hidden-trunk", dialed=None, hide_numbers=True, trunk_id="ST_hotline"))

    assert response.status_code == 200, response.text
    assert response.json()["persona_id"] == CRM_PERSONA["persona_id"]
    (dispatch,) = mesh.livekit.dispatches("call-hidden-trunk")
    metadata = job_metadata.decode(dispatch.metadata)
    assert metadata.call.dialed_number == DIALED and metadata.persona_source == PersonaSource.PERSONA_SOURCE_CRM


async def test_a_hidden_number_on_a_trunk_of_several_numbers_gets_the_default(mesh: Mesh) -> None:
    mesh.livekit.add_inbound_trunk("ST_pool", ["+918655701159", "+14155550100"])

    response = await mesh.deliver(_join("call-hidden-pool", dialed=None, hide_numbers=True, trunk_id="ST_pool"))

    assert response.status_code == 200, response.text
    assert response.json()["persona_source"] == "PERSONA_SOURCE_DEFAULT"
    assert "2 numbers" in response.json()["default_reason"]


async def test_an_outbound_sip_leg_gets_no_agent(mesh: Mesh) -> None:
    response = await mesh.deliver(sip_outbound_participant_joined(room="call-out", called_number="+14155550100"))

    assert response.status_code == 200
    assert response.json()["status"] == "ignored" and "outbound" in response.json()["detail"]
    assert mesh.livekit.dispatches("call-out") == []


async def test_the_dialed_number_as_a_carrier_sends_it_finds_the_persona(mesh: Mesh) -> None:
    # 918655701159: country code without "+", as many carriers put it in the To header.
    response = await mesh.deliver(_join("call-carrier", dialed="918655701159"))

    assert response.status_code == 200, response.text
    assert response.json()["persona_id"] == CRM_PERSONA["persona_id"]
