"""LiveKit webhook signature checks, done by livekit-api's WebhookReceiver on the
raw body (never on re-serialised JSON, whose bytes would differ from what was signed).

Before the body is read, `check_token` looks at the `Authorization` header alone:
present, of bounded length, a JWT's three base64url segments with an HS256 header,
and — one HMAC, with livekit-api's TokenVerifier — signed with our key, unexpired and
carrying the body hash. A shape check alone would let anyone with a well-formed fake
token make the gateway read a full body; with the signature checked too, nobody
without the webhook secret gets a body read at all. The body hash can only be checked
on the body: `receive` then finishes what livekit-api's `WebhookReceiver.receive` does
on the token `check_token` verified — the expiry again (the body took time to arrive),
the body's SHA-256, the protojson parse — rather than verify the same signature twice.
`verify` is the whole check in one go, for a caller that has the body already.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.api.access_token import DEFAULT_LEEWAY
from livekit.protocol.webhook import WebhookEvent


class SignatureError(Exception):
    """The request is not a webhook LiveKit signed with our key: answer 401."""


class MalformedEventError(Exception):
    """Correctly signed, but not a WebhookEvent: answer 400 (a redelivery sends the same bytes)."""


# LiveKit's webhook tokens are a few hundred characters (iss, exp, nbf, sha256).
MAX_TOKEN_CHARS = 4096
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class CheckedToken:
    """A webhook token whose signature and claims `check_token` verified: what the
    body must still match, and until when the token holds."""

    body_sha256: str  # the `sha256` claim: base64 of the signed body's digest
    expires_at: int  # the `exp` claim, Unix seconds


# How far past `exp` a token still holds: livekit-api's TokenVerifier's default, given
# to it explicitly so that `receive` repeats its expiry check exactly.
_LEEWAY_SECONDS = DEFAULT_LEEWAY.total_seconds()


class WebhookVerifier:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self._tokens = TokenVerifier(api_key, api_secret, leeway=DEFAULT_LEEWAY)
        self._receiver = WebhookReceiver(self._tokens)

    def check_token(self, authorization: str | None) -> CheckedToken:
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
        # The payload verified above; PyJWT checked that its `exp` reads as an integer.
        return CheckedToken(claims.sha256, int(_segment_json(authorization.split(".")[1])["exp"]))

    def receive(self, raw_body: bytes, token: CheckedToken) -> WebhookEvent:
        """The event in `raw_body`, signed by the token `check_token` verified: what
        `WebhookReceiver.receive` checks past the signature, in its order and with its
        failures. Raises SignatureError or MalformedEventError."""
        body = _decoded(raw_body)
        try:
            # PyJWT's expiry rule, on the clock it reads.
            if token.expires_at <= time.time() - _LEEWAY_SECONDS:
                raise _Refused("Signature has expired")
            # `raw_body` is the UTF-8 that `body` was decoded from: the bytes livekit-api hashes.
            if hashlib.sha256(raw_body).digest() != base64.b64decode(token.body_sha256):
                raise _Refused("hash mismatch")
            return json_format.Parse(body, WebhookEvent(), ignore_unknown_fields=True)
        except Exception as exc:  # noqa: BLE001 — answered as `verify` answers livekit-api's
            raise _refusal(exc) from exc

    def verify(self, raw_body: bytes, authorization: str | None) -> WebhookEvent:
        """The whole check in one go, for a caller that has the body already."""
        if not authorization:
            raise SignatureError("missing Authorization header")
        body = _decoded(raw_body)
        try:
            return self._receiver.receive(body, authorization)
        except Exception as exc:  # noqa: BLE001 — livekit-api raises bare Exception / PyJWT errors
            raise _refusal(exc) from exc


class _Refused(Exception):
    """A check of livekit-api's receive failed, said in its words."""


def _decoded(raw_body: bytes) -> str:
    try:
        return raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEventError("webhook body is not UTF-8") from exc


def _refusal(exc: Exception) -> SignatureError | MalformedEventError:
    """How a failure past the UTF-8 check is answered: a body that is no WebhookEvent is
    malformed (a redelivery sends the same bytes); anything else is a bad signature."""
    if isinstance(exc, json_format.ParseError):
        return MalformedEventError(f"webhook body is not a LiveKit WebhookEvent: {exc}")
    if isinstance(exc, RecursionError):
        return MalformedEventError("webhook body nests too deeply")
    return SignatureError(f"webhook signature rejected: {exc}")


def _segment_json(segment: str) -> Any:
    """A JWT segment's JSON. Raises ValueError (binascii.Error is one: bad base64;
    UnicodeDecodeError and JSONDecodeError too)."""
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _token_algorithm(token: str) -> str | None:
    """The `alg` of a JWT's header segment, None when it is not a JSON object."""
    try:
        header = _segment_json(token.split(".", 1)[0])
    except ValueError:
        return None
    algorithm = header.get("alg") if isinstance(header, dict) else None
    return algorithm if isinstance(algorithm, str) else None
