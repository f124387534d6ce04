"""WebhookVerifier's two steps, the token before the body (`check_token`) and the body
on the token it checked (`receive`), answer every webhook as livekit-api's
WebhookReceiver does in one go (`verify`): the same event, or the same refusal with
the same words — a token that expired while its body arrived included."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta

import pytest
from livekit.protocol.webhook import WebhookEvent

from services.testing.livekit_webhooks import event_body, sign, sip_participant_joined
from services.webhook_gateway.verification import MalformedEventError, SignatureError, WebhookVerifier

KEY = "APIverificationkey"
SECRET = "verification-secret-that-is-at-least-32-bytes"


def _verifier() -> WebhookVerifier:
    return WebhookVerifier(KEY, SECRET)


def _in_two_steps(body: bytes, authorization: str) -> WebhookEvent:
    verifier = _verifier()
    return verifier.receive(body, verifier.check_token(authorization))


def _outcome(step: object, *args: object) -> tuple[str, str] | WebhookEvent:
    try:
        return step(*args)  # type: ignore[operator, no-any-return]
    except (SignatureError, MalformedEventError) as exc:
        return type(exc).__name__, str(exc)


def _body() -> bytes:
    return event_body(sip_participant_joined(room="call-verify", dialed_number="+14155550123"))


def test_a_signed_webhook_gives_the_event_verify_gives() -> None:
    body = _body()
    authorization = sign(body, KEY, SECRET)["Authorization"]
    event = _in_two_steps(body, authorization)
    assert event == _verifier().verify(body, authorization)
    assert event.event == "participant_joined"
    assert event.room.name == "call-verify"


@pytest.mark.parametrize(
    "signed, sent",
    [
        pytest.param(_body(), _body().replace(b"call-verify", b"call-forged"), id="body changed after signing"),
        pytest.param(b'{"event": "participant_joined"', b'{"event": "participant_joined"', id="not JSON"),
        pytest.param(b'{"event": 7}', b'{"event": 7}', id="JSON that is no WebhookEvent"),
        pytest.param(b"\xff\xfe", b"\xff\xfe", id="not UTF-8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000 + b"]" * 100_000, id="nested too deeply"),
        pytest.param(b'{"event": "room_started", "unknownField": 1}', None, id="an unknown field is ignored"),
    ],
)
def test_each_body_is_answered_as_verify_answers_it(signed: bytes, sent: bytes | None) -> None:
    body = signed if sent is None else sent
    authorization = sign(signed, KEY, SECRET)["Authorization"]
    expected = _outcome(_verifier().verify, body, authorization)
    assert _outcome(_in_two_steps, body, authorization) == expected


def test_a_token_that_expires_while_its_body_arrives_is_refused_as_verify_refuses_it() -> None:
    body = _body()
    # exp 58 s ago: inside livekit-api's one-minute leeway now, outside it two seconds on.
    expires_at = calendar.timegm(datetime.now(UTC).utctimetuple()) - 58
    issued_at = datetime.fromtimestamp(expires_at - 300, UTC)
    authorization = sign(body, KEY, SECRET, valid_for=timedelta(seconds=300), issued_at=issued_at)["Authorization"]
    verifier = _verifier()
    token = verifier.check_token(authorization)
    assert token.expires_at == expires_at
    while time.time() - 60 < expires_at:
        time.sleep(0.1)
    with pytest.raises(SignatureError) as two_steps:
        verifier.receive(body, token)
    with pytest.raises(SignatureError) as one_go:
        verifier.verify(body, authorization)
    assert str(two_steps.value) == str(one_go.value) == "webhook signature rejected: Signature has expired"
