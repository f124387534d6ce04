"""Pre-built, pre-signed `participant_joined` webhooks, one per simulated call.

Signing is LiveKit's work, not ours, so it happens before the clock starts. Each
call needs its own body (own room, event id and SIP call id — otherwise the
gateway's dedupe or the dispatcher's exactly-one guard would answer without
dispatching), and the JWT binds the body's SHA-256, so each body is signed on its
own. The body is LiveKit's exact shape (services/testing builds it); only the
three ids are swapped into a template, which makes a webhook much cheaper to make
than building the protobuf event each time. Tokens are valid 5 minutes: sign right
before the scenario that sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.testing.livekit_webhooks import event_body, sign, sip_participant_joined

from .http_client import post_request

WEBHOOK_PATH = "/livekit-webhook"
# Fixed-width placeholders, so every body of a template has the same length.
_ROOM = "room-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
_EVENT = "EV_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
_CALL = "SCL_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Target:
        hostport = url.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        return cls(host, int(port))


class WebhookFactory:
    def __init__(self, target: Target, api_key: str, api_secret: str, *, tag: str) -> None:
        self._target = target
        self._key = api_key
        self._secret = api_secret
        self._tag = tag  # unique per scenario run, so rooms never collide across scenarios
        self._templates: dict[str, bytes] = {}
        self._seq = 0
        # Rooms of the calls made since the last `take_rooms()`: LiveKit must hold them first.
        self._rooms: list[str] = []

    def _template(self, dialed_number: str) -> bytes:
        if dialed_number not in self._templates:
            event = sip_participant_joined(room=_ROOM, dialed_number=dialed_number, call_id=_CALL, event_id=_EVENT)
            self._templates[dialed_number] = event_body(event)
        return self._templates[dialed_number]

    def request(self, dialed_number: str) -> bytes:
        """Raw HTTP bytes of one signed webhook for a new call to `dialed_number`."""
        self._seq += 1
        unique = f"{self._tag}-{self._seq:08d}"
        room = f"room-{unique}".ljust(len(_ROOM), "x")
        self._rooms.append(room)
        body = (
            self._template(dialed_number)
            .replace(_ROOM.encode(), room.encode())
            .replace(_EVENT.encode(), f"EV_{unique}".ljust(len(_EVENT), "x").encode())
            .replace(_CALL.encode(), f"SCL_{unique}".ljust(len(_CALL), "x").encode())
        )
        headers = sign(body, self._key, self._secret)
        return post_request(self._target.host, self._target.port, WEBHOOK_PATH, headers, body)

    def batch(self, numbers: list[str]) -> list[bytes]:
        return [self.request(number) for number in numbers]

    def take_rooms(self) -> list[str]:
        rooms, self._rooms = self._rooms, []
        return rooms
