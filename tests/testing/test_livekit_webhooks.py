"""Signed webhooks pass LiveKit's own receiver, and tampering is caught by it."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.models import ParticipantInfo

from services.testing.livekit_webhooks import (
    agent_participant_joined,
    event_body,
    room_started,
    sign,
    signed_request,
    sip_participant_joined,
    standard_participant_joined,
)

KEY = "webhook-key"
SECRET = "webhook-secret-0123456789-0123456789-abcdef"
RECEIVER = WebhookReceiver(TokenVerifier(KEY, SECRET))


def test_sip_join_is_accepted_by_livekit_receiver() -> None:
    event = sip_participant_joined(room="call-1", dialed_number="+14155550123", call_id="SCL_abc", event_id="EV_x1")
    body, headers = signed_request(event, KEY, SECRET)
    received = RECEIVER.receive(body.decode(), headers["Authorization"])
    assert received.event == "participant_joined"
    assert received.id == "EV_x1"
    assert received.room.name == "call-1"
    assert received.participant.kind == ParticipantInfo.Kind.SIP
    attrs = dict(received.participant.attributes)
    assert attrs["sip.trunkPhoneNumber"] == "+14155550123"
    assert attrs["sip.phoneNumber"] == "+14155550100"
    assert attrs["sip.callID"] == "SCL_abc"
    assert attrs["sip.trunkID"] == "ST_test"
    assert attrs["sip.callStatus"] == "ringing"
    assert "sip.ruleID" in attrs


def test_headers_are_exactly_what_livekit_sends() -> None:
    body, headers = signed_request(room_started(room="r"), KEY, SECRET)
    assert set(headers) == {"Authorization", "Content-Type"}
    assert headers["Content-Type"] == "application/webhook+json"
    assert not headers["Authorization"].startswith("Bearer")
    claims = jwt.decode(headers["Authorization"], SECRET, algorithms=["HS256"], issuer=KEY)
    assert claims["sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert claims["exp"] - claims["nbf"] == 300
    assert jwt.get_unverified_header(headers["Authorization"])["alg"] == "HS256"


def test_body_hash_mismatch_is_rejected() -> None:
    body, headers = signed_request(sip_participant_joined(room="r", dialed_number="+1555"), KEY, SECRET)
    tampered = body.replace(b"+1555", b"+1556")
    assert tampered != body
    with pytest.raises(Exception, match="hash mismatch"):
        RECEIVER.receive(tampered.decode(), headers["Authorization"])


def test_reserialised_json_is_rejected() -> None:
    # Same content, different bytes: receivers must hash the raw body, never re-dumped JSON.
    body, headers = signed_request(room_started(room="r"), KEY, SECRET)
    pretty = json.dumps(json.loads(body), indent=2)
    with pytest.raises(Exception, match="hash mismatch"):
        RECEIVER.receive(pretty, headers["Authorization"])


def test_wrong_secret_is_rejected() -> None:
    body, headers = signed_request(room_started(room="r"), KEY, "another-secret-0123456789-0123456789-xyz")
    with pytest.raises(jwt.InvalidSignatureError):
        RECEIVER.receive(body.decode(), headers["Authorization"])


def test_wrong_key_is_rejected() -> None:
    body, headers = signed_request(room_started(room="r"), "other-key", SECRET)
    with pytest.raises(jwt.InvalidIssuerError):
        RECEIVER.receive(body.decode(), headers["Authorization"])


def test_expired_token_is_rejected_but_recent_one_within_leeway_passes() -> None:
    body = event_body(room_started(room="r"))
    old = sign(body, KEY, SECRET, issued_at=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(jwt.ExpiredSignatureError):
        RECEIVER.receive(body.decode(), old["Authorization"])
    # Issued 5m30s ago: expired 30 s ago, inside the receiver's 60 s leeway.
    recent = sign(body, KEY, SECRET, issued_at=datetime.now(UTC) - timedelta(minutes=5, seconds=30))
    assert RECEIVER.receive(body.decode(), recent["Authorization"]).event == "room_started"


def test_sign_accepts_str_body() -> None:
    body = event_body(room_started(room="r")).decode()
    headers = sign(body, KEY, SECRET)
    assert RECEIVER.receive(body, headers["Authorization"]).room.name == "r"


def test_body_is_go_protojson_shaped() -> None:
    event = sip_participant_joined(room="r", dialed_number="+14155550123", created_at=1757600001)
    body = event_body(event)
    doc = json.loads(body)
    assert doc["createdAt"] == "1757600001"  # int64 as string
    assert doc["participant"]["joinedAt"] == "1757600001"
    assert doc["participant"]["kind"] == "SIP"  # enum by name
    assert doc["participant"]["state"] == "ACTIVE"
    assert doc["id"].startswith("EV_")
    assert "joinedAtMs" in doc["participant"] and "joined_at_ms" not in doc["participant"]  # camelCase
    assert "numDropped" not in doc and "egressInfo" not in doc  # zero values omitted
    assert b" " not in body.split(b'"name"')[0]  # compact separators, like Go


def test_standard_participant_has_no_kind_field() -> None:
    doc = json.loads(event_body(standard_participant_joined(room="r")))
    assert doc["event"] == "participant_joined"
    assert "kind" not in doc["participant"]


def test_agent_participant_is_kind_agent() -> None:
    event = agent_participant_joined(room="r", agent_name="friday-ai-agent", event_id="EV_agent")
    doc = json.loads(event_body(event))
    assert doc["participant"]["kind"] == "AGENT"
    assert doc["participant"]["name"] == "friday-ai-agent"
    assert doc["id"] == "EV_agent"


def test_hidden_numbers_are_absent_attributes() -> None:
    event = sip_participant_joined(room="r", dialed_number=None, hide_numbers=True)
    attrs = json.loads(event_body(event))["participant"]["attributes"]
    assert "sip.trunkPhoneNumber" not in attrs and "sip.phoneNumber" not in attrs
    assert attrs["sip.callStatus"] == "ringing"


def test_room_started_has_room_and_no_participant() -> None:
    doc = json.loads(event_body(room_started(room="r", event_id="EV_1")))
    assert doc["event"] == "room_started" and doc["room"]["name"] == "r"
    assert "participant" not in doc


def test_event_ids_are_unique_by_default() -> None:
    ids = {sip_participant_joined(room="r", dialed_number="+1").id for _ in range(50)}
    assert len(ids) == 50
