"""LiveKit webhook signature checks, done by livekit-api's WebhookReceiver on the
raw body (never on re-serialised JSON, whose bytes would differ from what was signed)."""

from __future__ import annotations

from google.protobuf import json_format
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.webhook import WebhookEvent


class SignatureError(Exception):
    """The request is not a webhook LiveKit signed with our key: answer 401."""


class MalformedEventError(Exception):
    """Correctly signed, but not a WebhookEvent: answer 400 (a redelivery sends the same bytes)."""


class WebhookVerifier:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self._receiver = WebhookReceiver(TokenVerifier(api_key, api_secret))

    def verify(self, raw_body: bytes, authorization: str | None) -> WebhookEvent:
        if not authorization:
            raise SignatureError("missing Authorization header")
        try:
            body = raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedEventError("webhook body is not UTF-8") from exc
        try:
            return self._receiver.receive(body, authorization)
        except json_format.ParseError as exc:
            raise MalformedEventError(f"webhook body is not a LiveKit WebhookEvent: {exc}") from exc
        except RecursionError as exc:
            raise MalformedEventError("webhook body nests too deeply") from exc
        except Exception as exc:  # noqa: BLE001 — livekit-api raises bare Exception / PyJWT errors
            raise SignatureError(f"webhook signature rejected: {exc}") from exc
