"""LiveKit webhook signature checks, done by livekit-api's WebhookReceiver on the
raw body (never on re-serialised JSON, whose bytes would differ from what was signed).

Before the body is read, `check_token` looks at the `Authorization` header alone:
present, of bounded length, a JWT's three base64url segments with an HS256 header,
and — one HMAC, with livekit-api's TokenVerifier — signed with our key, unexpired and
carrying the body hash. A shape check alone would let anyone with a well-formed fake
token make the gateway read a full body; with the signature checked too, nobody
without the webhook secret gets a body read at all. The body hash can only be checked
on the body: `verify` then does the whole check again, on the raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from google.protobuf import json_format
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.webhook import WebhookEvent


class SignatureError(Exception):
    """The request is not a webhook LiveKit signed with our key: answer 401."""


class MalformedEventError(Exception):
    """Correctly signed, but not a WebhookEvent: answer 400 (a redelivery sends the same bytes)."""


# LiveKit's webhook tokens are a few hundred characters (iss, exp, nbf, sha256).
MAX_TOKEN_CHARS = 4096
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class WebhookVerifier:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self._tokens = TokenVerifier(api_key, api_secret)
        self._receiver = WebhookReceiver(self._tokens)

    def check_token(self, authorization: str | None) -> None:
        """What the header alone can prove, before a byte of the body is read.
        Raises SignatureError."""
        if not authorization:
            raise SignatureError("missing Authorization header")
        if len(authorization) > MAX_TOKEN_CHARS:
            raise SignatureError(f"Authorization header over {MAX_TOKEN_CHARS} characters")
        if not _JWT_SHAPE.fullmatch(authorization):
            raise SignatureError("Authorization is not a JWT")
        if _token_algorithm(authorization) != "HS256":
            raise SignatureError("webhook token is not HS256")
        try:
            claims = self._tokens.verify(authorization)
        except Exception as exc:  # noqa: BLE001 — PyJWT's errors, and livekit-api's on odd claims
            raise SignatureError(f"webhook signature rejected: {exc}") from exc
        if not claims.sha256:
            raise SignatureError("webhook token carries no body hash")

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


def _token_algorithm(token: str) -> str | None:
    """The `alg` of a JWT's header segment, None when it is not a JSON object."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):  # bad base64, bad UTF-8 or bad JSON
        return None
    algorithm = header.get("alg") if isinstance(header, dict) else None
    return algorithm if isinstance(algorithm, str) else None
