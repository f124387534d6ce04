"""Property tests over POST /livekit-webhook: whatever arrives, the gateway answers
without a 5xx, logs no error, and dispatches only for correctly signed SIP joins."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.testing.livekit_webhooks import sign, sip_participant_joined
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_SECRET, Mesh
from tests.hostile.conftest import error_records
from tests.hostile.strategies import json_values, sip_join_like, webhook_like
from tests.webhook_gateway.conftest import DIALED

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
_HEADER_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20).filter(
    lambda name: name not in ("content-length", "transfer-encoding", "host", "authorization", "content-type")
)
_CONTENT_TYPES = st.one_of(
    st.sampled_from(
        ["application/webhook+json", "application/json", "application/json; charset=utf-8", "text/plain", ""]
    ),
    _HEADER_TEXT,
)


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


_BODIES = st.one_of(
    st.binary(max_size=3000),
    json_values.map(_dumps),
    webhook_like().map(_dumps),
)


@st.composite
def _bad_authorization(draw: st.DrawFn, body: bytes) -> str | None:
    """Anything but a valid signature for `body`."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return None
    if choice == 1:
        return draw(_HEADER_TEXT).strip() or None
    if choice == 2:  # right key, wrong secret
        return sign(body, WEBHOOK_KEY, "some-other-secret-that-is-32-bytes-long!")["Authorization"]
    if choice == 3:  # a real token, for other bytes
        return sign(body + b" ", WEBHOOK_KEY, WEBHOOK_SECRET)["Authorization"]
    if choice == 4:  # expired
        return sign(body, WEBHOOK_KEY, WEBHOOK_SECRET, valid_for=timedelta(seconds=-120))["Authorization"]
    return sign(body, "APIunknownkey", WEBHOOK_SECRET)["Authorization"]  # wrong key


@SETTINGS
@given(data=st.data(), body=_BODIES, content_type=_CONTENT_TYPES)
async def test_unsigned_requests_never_dispatch_or_fail(
    mesh: Mesh, caplog: pytest.LogCaptureFixture, data: st.DataObject, body: bytes, content_type: str
) -> None:
    caplog.set_level(logging.WARNING)
    # h11 (the client) refuses header values with surrounding whitespace; the server never sees those.
    headers = {k: v.strip() for k, v in data.draw(st.dictionaries(_HEADER_NAMES, _HEADER_TEXT, max_size=5)).items()}
    authorization = data.draw(_bad_authorization(body))
    if authorization is not None:
        headers["Authorization"] = authorization
    headers["Content-Type"] = content_type.strip()

    response = await mesh.post(body, headers)

    assert response.status_code in (400, 401, 413, 415), (response.status_code, response.text)
    assert mesh.livekit.create_count() == 0
    assert mesh.crm.total_requests == 0
    assert error_records(caplog) == []


@SETTINGS
@given(
    document=st.one_of(webhook_like(), sip_join_like()),
    raw_tail=st.sampled_from([b"", b" ", b"\n", b"garbage", b"\xff"]),
)
async def test_signed_weird_events_never_5xx(
    mesh: Mesh, caplog: pytest.LogCaptureFixture, document: object, raw_tail: bytes
) -> None:
    caplog.set_level(logging.WARNING)
    body = _dumps(document) + raw_tail
    response = await mesh.post(body, sign(body, WEBHOOK_KEY, WEBHOOK_SECRET))

    assert response.status_code < 500, (response.status_code, response.text, body[:300])
    if response.status_code == 200 and response.json().get("status") == "dispatched":
        room = response.json()["room"]
        assert len(mesh.livekit.dispatches(room)) == 1
    assert error_records(caplog) == []


@pytest.mark.parametrize(
    "room", ["r" * 300, "r" * 10_000, "room\x00x", "room\nx", " padded", "\u202eroom"], ids=range(6)
)
async def test_signed_sip_join_for_an_unusable_room_is_4xx_and_dispatches_nothing(
    mesh: Mesh, caplog: pytest.LogCaptureFixture, room: str
) -> None:
    caplog.set_level(logging.WARNING)
    response = await mesh.deliver(sip_participant_joined(room=room, dialed_number=DIALED))
    # 4xx: the same event can never succeed, and LiveKit must not redeliver it.
    assert 400 <= response.status_code < 500, response.text
    assert mesh.livekit.create_count() == 0
    assert error_records(caplog) == []


@pytest.mark.parametrize(
    "dialed", ["+٩١٨٦٥٥٧٠١١٥٩", "+91\x008655701159", "9" * 5000, "☎", "+91 86557 01159\u200b"], ids=range(5)
)
async def test_signed_sip_join_with_a_hostile_number_gets_the_default_persona(mesh: Mesh, dialed: str) -> None:
    room = f"call-hostile-{abs(hash(dialed))}"
    response = await mesh.deliver(sip_participant_joined(room=room, dialed_number=dialed))
    assert response.status_code == 200, response.text
    assert response.json()["persona_source"] in ("PERSONA_SOURCE_DEFAULT", "PERSONA_SOURCE_CRM")
    assert len(mesh.livekit.dispatches(room)) == 1


@pytest.mark.parametrize("event_id", ["EV_\x1f", "EV_é☎", "EV_" + "x" * 20_000, "", " "], ids=range(5))
async def test_any_signed_event_id_is_a_usable_trace_id(
    mesh: Mesh, caplog: pytest.LogCaptureFixture, event_id: str
) -> None:
    # The event id becomes the trace id, sent as gRPC metadata (printable ASCII, size-limited).
    caplog.set_level(logging.WARNING)
    room = f"call-trace-{len(event_id)}-{abs(hash(event_id))}"
    response = await mesh.deliver(sip_participant_joined(room=room, dialed_number=DIALED, event_id=event_id))
    assert response.status_code == 200, response.text[:300]
    assert response.json()["persona_source"] != "PERSONA_SOURCE_DEFAULT"
    assert len(mesh.livekit.dispatches(room)) == 1
    assert error_records(caplog) == []
