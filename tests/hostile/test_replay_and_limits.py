"""Replays and oversize personas: a signed webhook replayed after its token expired is
refused, a fresh replay is a no-op, and a CRM persona too large for LiveKit's job
metadata is swapped for the default without a 5xx."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from friday.persona.v1.persona_pb2 import PersonaSource
from services.common import job_metadata
from services.common.default_persona import DEFAULT_PERSONA_ID
from services.testing.livekit_webhooks import event_body, sign, sip_participant_joined
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_SECRET, Mesh
from tests.hostile.conftest import error_records
from tests.webhook_gateway.conftest import CRM_PERSONA, CRM_SEGMENT, DIALED

TEN_MINUTES_AGO = timedelta(minutes=10)


async def test_replay_with_an_expired_token_is_401_and_a_fresh_replay_is_deduped(mesh: Mesh) -> None:
    mesh.livekit.create_room("call-replayed")  # the caller is in it before LiveKit sends the join
    body = event_body(sip_participant_joined(room="call-replayed", dialed_number=DIALED))
    first = await mesh.post(body, sign(body, WEBHOOK_KEY, WEBHOOK_SECRET))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "dispatched"

    # The same bytes (same event id) under a token LiveKit signed 10 minutes ago.
    stale = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET, issued_at=datetime.now(UTC) - TEN_MINUTES_AGO)
    replayed = await mesh.post(body, stale)
    assert replayed.status_code == 401, replayed.text

    fresh_replay = await mesh.post(body, sign(body, WEBHOOK_KEY, WEBHOOK_SECRET))
    assert fresh_replay.status_code == 200, fresh_replay.text
    assert fresh_replay.json()["status"] == "ignored"

    assert len(mesh.livekit.dispatches("call-replayed")) == 1
    assert mesh.livekit.create_count() == 1


async def test_an_old_signed_event_never_seen_before_is_401_and_dispatches_nothing(mesh: Mesh) -> None:
    body = event_body(sip_participant_joined(room="call-old", dialed_number=DIALED))
    old = sign(body, WEBHOOK_KEY, WEBHOOK_SECRET, issued_at=datetime.now(UTC) - TEN_MINUTES_AGO)
    response = await mesh.post(body, old)
    assert response.status_code == 401
    assert mesh.livekit.all_dispatches() == []
    assert mesh.crm.total_requests == 0


# Between LiveKit's 512 KiB metadata limit and PersonaService's 1 MiB CRM body cap: the
# gateway is what refuses these (bigger CRM bodies are refused by PersonaService, below).
@pytest.mark.parametrize("prompt_kib", [513, 1000])
async def test_crm_persona_over_the_metadata_limit_dispatches_the_default(
    mesh: Mesh, caplog: pytest.LogCaptureFixture, prompt_kib: int
) -> None:
    caplog.set_level(logging.WARNING)
    mesh.crm.set_persona(CRM_SEGMENT, {**CRM_PERSONA, "personality": "x" * (prompt_kib * 1024)})
    room = f"call-huge-{prompt_kib}"

    response = await mesh.deliver(sip_participant_joined(room=room, dialed_number=DIALED))

    assert response.status_code == 200, response.text[:500]
    answer = response.json()
    assert answer["persona_source"] == "PERSONA_SOURCE_DEFAULT"
    assert "persona refused" in answer["default_reason"]
    assert str(job_metadata.MAX_METADATA_BYTES) in answer["default_reason"]
    dispatches = mesh.livekit.dispatches(room)
    assert len(dispatches) == 1
    metadata = job_metadata.decode(dispatches[0].metadata)
    assert metadata.persona.persona_id == DEFAULT_PERSONA_ID
    assert metadata.persona_source == PersonaSource.PERSONA_SOURCE_DEFAULT
    assert metadata.call.dialed_number == DIALED
    assert len(dispatches[0].metadata.encode()) <= job_metadata.MAX_METADATA_BYTES
    assert error_records(caplog) == []


async def test_persona_just_under_the_limit_is_still_dispatched(mesh: Mesh) -> None:
    # The limit is on the whole serialised metadata, so leave room for the call facts.
    mesh.crm.set_persona(CRM_SEGMENT, {**CRM_PERSONA, "personality": "y" * (500 * 1024)})
    response = await mesh.deliver(sip_participant_joined(room="call-big", dialed_number=DIALED))
    assert response.status_code == 200, response.text[:500]
    assert response.json()["persona_source"] == "PERSONA_SOURCE_CRM"
    metadata = job_metadata.decode(mesh.livekit.dispatches("call-big")[0].metadata)
    assert len(metadata.persona.personality) == 500 * 1024


async def test_crm_body_over_persona_services_cap_dispatches_the_default(
    mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    mesh.crm.set_persona(CRM_SEGMENT, {**CRM_PERSONA, "personality": "x" * (2048 * 1024)})

    response = await mesh.deliver(sip_participant_joined(room="call-huge-body", dialed_number=DIALED))

    assert response.status_code == 200, response.text[:500]
    assert response.json()["persona_source"] == "PERSONA_SOURCE_DEFAULT"
    assert mesh.crm.requests_for(CRM_SEGMENT) == 1  # too large is not worth a retry
    dispatches = mesh.livekit.dispatches("call-huge-body")
    assert len(dispatches) == 1
    assert job_metadata.decode(dispatches[0].metadata).persona.persona_id == DEFAULT_PERSONA_ID
    assert error_records(caplog) == []
