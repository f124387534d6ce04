"""Twirp wire details shared by the LiveKit stand-in: error bodies, codecs, and LiveKit's auth middleware.

Mirrors what livekit-server does (pkg/service/auth.go + twitchtv/twirp generated servers):

* A *bad token* (not ``Bearer``, unparseable, unknown key, bad signature, expired / not yet
  valid) is rejected by livekit-server's HTTP middleware **before** Twirp runs: HTTP 401 with
  a *plain-text* body. The Python SDK then raises ``ServerError(code="unknown", status=401)``.
* A *valid token without the needed grant* - and a request with no token at all - reaches the
  service, whose permission check fails: Twirp error ``unauthenticated`` (401) ``"permissions
  denied"``. The checks (pkg/service/auth.go): ``EnsureAdminPermission`` (``video.roomAdmin`` and
  ``video.room`` == the request's room: AgentDispatchService), ``EnsureListPermission``
  (``video.roomList``: ListRooms), ``EnsureCreatePermission`` (``video.roomCreate``: CreateRoom,
  DeleteRoom), ``EnsureSIPAdminPermission`` (``sip.admin``: the SIP trunk and rule calls).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

# Twirp error code -> HTTP status (twitchtv/twirp errors.go ServerHTTPStatusFromErrorCode).
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

JSON = "application/json"
PROTOBUF = "application/protobuf"
# livekit-server's token verification allows one minute of clock skew (protocol auth DefaultLeeway).
LEEWAY_SECONDS = 60

M = TypeVar("M", bound=Message)


class TwirpError(Exception):
    def __init__(self, code: str, msg: str, *, status: int | None = None, meta: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status if status is not None else TWIRP_STATUS.get(code, 500)
        self.meta = meta or {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return web.Response(status=self.status, body=json.dumps(body).encode(), content_type=JSON)


class MiddlewareReject(Exception):
    """livekit-server's auth middleware rejection: 401 with a plain-text body, not Twirp JSON."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def response(self) -> web.Response:
        return web.Response(status=401, text=self.text)


def content_type_of(request: web.Request) -> str:
    """Twirp's routing by Content-Type (parameters such as ``; charset=utf-8`` ignored)."""
    ct = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if ct not in (JSON, PROTOBUF):
        raise TwirpError("bad_route", f"unexpected Content-Type: {ct!r}", meta={"twirp_invalid_route": _route(request)})
    return ct


def decode(body: bytes, content_type: str, message: M) -> M:
    try:
        if content_type == JSON:
            # Twirp's protojson unmarshal discards unknown fields and accepts both name styles.
            json_format.Parse(body.decode() or "{}", message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError, ValueError) as exc:
        kind = "json" if content_type == JSON else "protobuf"
        raise TwirpError("malformed", f"the {kind} request could not be decoded: {exc}") from exc
    return message


def encode(message: Message, content_type: str) -> web.Response:
    if content_type == JSON:
        # Twirp's default JSON marshal: proto field names, unpopulated fields emitted.
        text = json_format.MessageToJson(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True, indent=None
        )
        return web.Response(status=200, body=text.encode(), content_type=JSON)
    return web.Response(status=200, body=message.SerializeToString(), content_type=PROTOBUF)


def _route(request: web.Request) -> str:
    return f"{request.method} {request.path}"


@dataclass(frozen=True)
class Grants:
    """The parts of a verified LiveKit token the stand-in's services look at."""

    room_admin: bool
    room: str
    has_video: bool
    room_list: bool = False
    room_create: bool = False
    sip_admin: bool = False
    sip_call: bool = False  # sip.call: CreateSIPParticipant, TransferSIPParticipant
    agent: bool = False  # video.agent: what the agent protocol's /agent WebSocket asks for


NO_GRANTS = Grants(room_admin=False, room="", has_video=False)


class TokenVerifier:
    """livekit-server APIKeyAuthMiddleware: verify the bearer token, return its grants.

    A token whose signature and issuer were verified once is remembered (the dispatcher
    reuses one per room), so a repeat only re-checks ``exp``/``nbf`` against the clock:
    the benchmark runs this stand-in on the same two cores as the mesh, and PyJWT's
    decode was a fifth of its CPU. What is accepted and rejected is unchanged.
    """

    MAX_REMEMBERED = 4096

    def __init__(self, api_key: str, api_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self._clock = clock
        self._verified: dict[str, dict[str, Any]] = {}

    def grants(self, authorization: str | None) -> Grants:
        """No header means no grants (the request continues and fails the permission check later)."""
        if not authorization:
            return NO_GRANTS
        if not authorization.startswith("Bearer "):
            raise MiddlewareReject("invalid authorization header. Must start with Bearer ")
        token = authorization[len("Bearer ") :]
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= self.MAX_REMEMBERED:
                self._verified.clear()
            self._verified[token] = claims
        else:
            self._check_times(token, claims)
        video = claims.get("video")
        sip = claims.get("sip")
        sip_admin = isinstance(sip, dict) and bool(sip.get("admin"))
        sip_call = isinstance(sip, dict) and bool(sip.get("call"))
        if not isinstance(video, dict):
            return Grants(room_admin=False, room="", has_video=False, sip_admin=sip_admin, sip_call=sip_call)
        return Grants(
            room_admin=bool(video.get("roomAdmin")),
            room=str(video.get("room", "")),
            has_video=True,
            room_list=bool(video.get("roomList")),
            room_create=bool(video.get("roomCreate")),
            sip_admin=sip_admin,
            sip_call=sip_call,
            agent=bool(video.get("agent")),
        )

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise MiddlewareReject("invalid authorization token") from exc
        issuer = unverified.get("iss", "")
        if issuer != self.api_key:
            raise MiddlewareReject("invalid API key")
        try:
            return jwt.decode(
                token,
                key=self.api_secret,
                algorithms=["HS256"],
                issuer=self.api_key,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise MiddlewareReject(f"invalid authorization token: {exc}") from exc

    def _check_times(self, token: str, claims: dict[str, Any]) -> None:
        now = self._clock()
        if now > float(claims["exp"]) + LEEWAY_SECONDS:
            del self._verified[token]
            raise MiddlewareReject("invalid authorization token: Signature has expired")
        if "nbf" in claims and now < float(claims["nbf"]) - LEEWAY_SECONDS:
            raise MiddlewareReject("invalid authorization token: The token is not yet valid (nbf)")


def ensure_admin(grants: Grants, room: str) -> None:
    """livekit-server EnsureAdminPermission wrapped by twirpAuthError."""
    if not grants.has_video or not grants.room_admin or grants.room != room:
        raise permission_denied()


def ensure_list(grants: Grants) -> None:
    """EnsureListPermission."""
    if not grants.has_video or not grants.room_list:
        raise permission_denied()


def ensure_create(grants: Grants) -> None:
    """EnsureCreatePermission."""
    if not grants.has_video or not grants.room_create:
        raise permission_denied()


def ensure_sip_admin(grants: Grants) -> None:
    """EnsureSIPAdminPermission: the token's ``sip`` claims, not ``video``."""
    if not grants.sip_admin:
        raise permission_denied()


def permission_denied() -> TwirpError:
    """twirpAuthError(ErrPermissionDenied)."""
    return TwirpError("unauthenticated", "permissions denied")
