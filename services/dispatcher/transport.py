"""The edge to LiveKit's AgentDispatchService, behind a tiny interface (as httpx's
AsyncBaseTransport): the dispatch logic only sees `DispatchRecord`s and
`LiveKitCallError`s, never aiohttp or livekit-api types, so the SDK can change
without touching the exactly-one algorithm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# HTTP statuses worth another attempt: LiveKit's own webhook sender retries the same set
# (5xx except 501, and 429).
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRYABLE_TWIRP_CODES = frozenset({"unavailable", "internal", "unknown", "deadline_exceeded", "resource_exhausted"})


@dataclass(frozen=True)
class DispatchRecord:
    """One agent dispatch as LiveKit holds it."""

    dispatch_id: str
    agent_name: str
    room: str
    metadata: str


class LiveKitCallError(Exception):
    """A failed LiveKit request. `status` is the HTTP status (None for a transport
    failure or timeout: nothing usable came back); `code` is the Twirp error code."""

    def __init__(self, code: str, message: str, *, status: int | None) -> None:
        super().__init__(f"LiveKit {code} (HTTP {status}): {message}" if status else f"LiveKit {code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    @property
    def is_transport(self) -> bool:
        return self.status is None

    @property
    def may_have_landed(self) -> bool:
        """Could the request have taken effect anyway? Yes when no answer came back, or when
        a proxy answered for LiveKit (502/504: the request may have reached LiveKit) or
        LiveKit itself timed out. A Twirp error from LiveKit's own handler means it did not."""
        return self.status is None or self.status in (502, 504) or self.code == "deadline_exceeded"

    @property
    def retryable(self) -> bool:
        """Transport failures, timeouts, 5xx (but 501) and 429 may succeed on retry; a
        4xx never will (LiveKit's own retry rule, DESIGN.md §3)."""
        if self.status is None:
            return True
        if self.status == 501:
            return False
        if self.status in _RETRYABLE_STATUSES or self.status >= 500:
            return True
        return self.status < 400 and self.code in _RETRYABLE_TWIRP_CODES


class DispatchTransport(Protocol):
    """Create/list/delete agent dispatches. `timeout` bounds one request (seconds);
    implementations make exactly one attempt: retrying is the caller's job, so there is
    one retry layer only."""

    async def create(self, room: str, agent_name: str, metadata: str, *, timeout: float) -> DispatchRecord: ...

    async def list(self, room: str, *, timeout: float) -> list[DispatchRecord]: ...

    async def delete(self, room: str, dispatch_id: str, *, timeout: float) -> DispatchRecord: ...

    async def aclose(self) -> None: ...
