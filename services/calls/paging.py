"""ListCalls' page tokens: the (start time, room) of a page's last call, so the next page is a
keyset query (`started before it, or at the same time with a smaller room`) that stays right
while calls are being added, unlike an offset."""

from __future__ import annotations

import base64

from services.calls import errors


def encode_page_token(started_ms: int, room: str) -> str:
    return base64.urlsafe_b64encode(f"{started_ms}:{room}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        started, room = raw.split(":", 1)
        return int(started), room
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidPageToken(f"page token {token!r} is not one ListCalls gave out") from None
