"""Builds webhook requests exactly as livekit-server sends them (livekit/protocol webhook/resource_url_notifier.go).

* Body: ``protojson.Marshal(event)`` with Go defaults - camelCase JSON names, int64 as strings,
  enums by name, zero values omitted (a STANDARD participant has no ``kind``). Compact output.
* Headers: ``Authorization: <raw JWT>`` (no ``Bearer``) and ``Content-Type: application/webhook+json``.
* JWT: HS256, ``iss`` = API key, valid 5 minutes, ``sha256`` = base64(SHA-256(body bytes)).

Verify with ``livekit.api.WebhookReceiver(TokenVerifier(key, secret)).receive(body.decode(), auth)``.

The events: a SIP caller's join and an outbound SIP leg's (participants as livekit/sip makes
them: ``sip_participants``), our agent's join (kind AGENT), a browser user's (STANDARD, no
``kind``), ``room_started``; the caller leaving (``participant_left`` or
``participant_connection_aborted``, with LiveKit's disconnect reason) and ``room_finished``.
Ids have livekit's shapes (``EV_``, ``RM_``, ``PA_`` + 12 base57).

Not modelled here: how LiveKit delivers them — one FIFO queue per room and URL, retries,
drops — which is ``services.chaos.redelivery``; and the other events LiveKit sends.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import secrets
import string
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from google.protobuf import json_format
from livekit.api import AccessToken
from livekit.protocol.models import DisconnectReason, ParticipantInfo, Room
from livekit.protocol.webhook import WebhookEvent

from . import sip_participants
from .livekit_ids import JOB_PREFIX, ROOM_PREFIX, guid

WEBHOOK_CONTENT_TYPE = "application/webhook+json"
DEFAULT_VALIDITY = timedelta(minutes=5)
_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, n: int = 12) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(n))


def body_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign(
    body: bytes | str,
    api_key: str,
    api_secret: str,
    *,
    valid_for: timedelta = DEFAULT_VALIDITY,
    issued_at: datetime | None = None,
) -> dict[str, str]:
    """Headers LiveKit sends with ``body``. ``issued_at`` in the past makes expired tokens for tests."""
    raw = body.encode() if isinstance(body, str) else body
    digest = body_sha256(raw)
    if issued_at is None:
        token = AccessToken(api_key, api_secret).with_ttl(valid_for).with_sha256(digest).to_jwt()
    else:
        # AccessToken always stamps "now"; build the same claims by hand for a chosen time.
        nbf = calendar.timegm(issued_at.astimezone(UTC).utctimetuple())
        claims = {"iss": api_key, "nbf": nbf, "exp": nbf + int(valid_for.total_seconds()), "sha256": digest}
        token = jwt.encode(claims, api_secret, algorithm="HS256")
    return {"Authorization": token, "Content-Type": WEBHOOK_CONTENT_TYPE}


def event_body(event: WebhookEvent) -> bytes:
    """protojson as Go marshals it: camelCase, int64 strings, enum names, no zero values."""
    as_dict = json_format.MessageToDict(event, preserving_proto_field_name=False)
    return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False).encode()


def signed_request(
    event: WebhookEvent, api_key: str, api_secret: str, **sign_kwargs: object
) -> tuple[bytes, dict[str, str]]:
    body = event_body(event)
    return body, sign(body, api_key, api_secret, **sign_kwargs)  # type: ignore[arg-type]


# -- events --------------------------------------------------------------------------------


def _room(name: str, now: int) -> Room:
    return Room(
        sid=guid(ROOM_PREFIX),
        name=name,
        empty_timeout=300,
        departure_timeout=20,
        creation_time=now,
        creation_time_ms=now * 1000,
        turn_password=secrets.token_hex(8),
    )


def _event(kind: str, room: str, event_id: str | None, created_at: int | None) -> WebhookEvent:
    now = created_at if created_at is not None else int(time.time())
    return WebhookEvent(event=kind, room=_room(room, now), id=event_id or guid("EV_"), created_at=now)


def sip_participant_joined(
    *,
    room: str,
    dialed_number: str | None,
    caller_number: str = "+14155550100",
    hide_numbers: bool = False,
    event_id: str | None = None,
    created_at: int | None = None,
    joined_at_ms: int | None = None,
    **attributes: Any,
) -> WebhookEvent:
    """A caller's SIP leg joining, as livekit/sip makes it (`sip_participants.inbound`, which
    takes the other keyword arguments: call_id, trunk_id, rule_id, x_headers, identity, …).
    `dialed_number` is `sip.trunkPhoneNumber` exactly as the carrier sent it."""
    event = _event("participant_joined", room, event_id, created_at)
    event.participant.CopyFrom(
        sip_participants.inbound(
            dialed_number=dialed_number,
            caller_number=caller_number,
            hide_numbers=hide_numbers,
            joined_at=event.created_at,
            **attributes,
        )
    )
    if joined_at_ms is not None:
        event.participant.joined_at_ms = joined_at_ms
    return event


def sip_outbound_participant_joined(
    *,
    room: str,
    called_number: str,
    event_id: str | None = None,
    created_at: int | None = None,
    **attributes: Any,
) -> WebhookEvent:
    """A SIP leg we dial out joining while it is still dialing (`sip_participants.outbound`)."""
    event = _event("participant_joined", room, event_id, created_at)
    event.participant.CopyFrom(
        sip_participants.outbound(called_number=called_number, joined_at=event.created_at, **attributes)
    )
    return event


def agent_participant_joined(
    *,
    room: str,
    agent_name: str = "friday-ai-agent",
    event_id: str | None = None,
    joined_at_ms: int | None = None,
    identity: str | None = None,
) -> WebhookEvent:
    """Our own agent joining the room: kind AGENT. It starts no dispatch; it answers the call.
    `joined_at_ms`: LiveKit's joinedAtMs (default: now, whole seconds as joinedAt).
    `identity`: the job's participant identity (default: `agent-` + a made-up job id)."""
    created_at = joined_at_ms // 1000 if joined_at_ms is not None else None
    event = _event("participant_joined", room, event_id, created_at)
    p = sip_participants.participant_info(
        identity or f"agent-{guid(JOB_PREFIX)}", agent_name, event.created_at, kind=ParticipantInfo.Kind.AGENT
    )
    if joined_at_ms is not None:
        p.joined_at_ms = joined_at_ms
    p.permission.agent = True
    p.attributes.update({"lk.agent.state": "initializing", "lk.agent_name": agent_name})
    event.participant.CopyFrom(p)
    return event


def sip_participant_left(
    joined: WebhookEvent,
    *,
    created_at: int | None = None,
    event_id: str | None = None,
    event: str = "participant_left",
    disconnect_reason: int = DisconnectReason.CLIENT_INITIATED,
) -> WebhookEvent:
    """The caller of `joined` (a SIP participant_joined) leaving: LiveKit sends the participant
    as it was, now DISCONNECTED, with why. `event` may be "participant_connection_aborted"."""
    left = _event(event, joined.room.name, event_id, created_at)
    left.room.CopyFrom(joined.room)
    left.participant.CopyFrom(joined.participant)
    left.participant.state = ParticipantInfo.State.DISCONNECTED
    left.participant.disconnect_reason = disconnect_reason  # type: ignore[assignment]
    return left


def room_finished(*, room: str, created_at: int | None = None, event_id: str | None = None) -> WebhookEvent:
    return _event("room_finished", room, event_id, created_at)


def standard_participant_joined(*, room: str, event_id: str | None = None) -> WebhookEvent:
    """A browser/app user joining: kind STANDARD, i.e. no ``kind`` in the JSON at all."""
    event = _event("participant_joined", room, event_id, None)
    event.participant.CopyFrom(
        sip_participants.participant_info(
            random_id("user-", 6), "Web user", event.created_at, kind=ParticipantInfo.Kind.STANDARD
        )
    )
    return event


def room_started(*, room: str, event_id: str | None = None) -> WebhookEvent:
    return _event("room_started", room, event_id, None)
