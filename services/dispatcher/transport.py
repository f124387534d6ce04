"""The edge to LiveKit (AgentDispatchService, and the RoomService / SIP reads the
dispatch needs), behind a tiny interface (as httpx's AsyncBaseTransport): the
dispatch logic only sees `DispatchRecord`s, `JobRecord`s and `LiveKitCallError`s,
never aiohttp or livekit-api types, so the SDK can change without touching the
exactly-one algorithm."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol

# HTTP statuses worth another attempt: LiveKit's own webhook sender retries the same set
# (5xx except 501, and 429).
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRYABLE_TWIRP_CODES = frozenset({"unavailable", "internal", "unknown", "deadline_exceeded", "resource_exhausted"})


# LiveKit's JobStatus names (livekit_agent.proto): a job is live from the moment a
# worker accepted it (PENDING: assigned, its process starting) until it ends.
LIVE_JOB_STATUSES = frozenset({"JS_PENDING", "JS_RUNNING"})


@dataclass(frozen=True)
class JobRecord:
    """One job of a dispatch (`AgentDispatch.state.jobs`): a worker took it."""

    job_id: str
    status: str  # JobStatus name
    worker_id: str = ""
    participant_identity: str = ""
    error: str = ""

    @property
    def live(self) -> bool:
        return self.status in LIVE_JOB_STATUSES


@dataclass(frozen=True)
class DispatchRecord:
    """One agent dispatch as LiveKit holds it. A dispatch is not an agent: `jobs`
    stays empty until a worker registered for `agent_name` takes the job."""

    dispatch_id: str
    agent_name: str
    room: str
    metadata: str
    jobs: tuple[JobRecord, ...] = ()
    # `state.created_at` (ns, LiveKit's clock): which of two dispatches of one call is
    # the older, the one every replica keeps when it finds a double (reconcile.py).
    created_at: int = 0

    @property
    def live_job(self) -> JobRecord | None:
        return next((job for job in self.jobs if job.live), None)

    @property
    def failed(self) -> bool:
        """It had a job and none is live any more: the worker failed it, rejected it
        (JS_SUCCESS without ever running), or it ended. LiveKit never offers it again."""
        return bool(self.jobs) and self.live_job is None


class LiveKitCallError(Exception):
    """A failed LiveKit request. `status` is the HTTP status (None for a transport
    failure or timeout: nothing usable came back); `code` is the Twirp error code, or
    for failures without a Twirp answer: `timeout`, `connect` (connection never made,
    nothing sent), `transport` (connection failed after it was made), `malformed` (an
    answer that is not a LiveKit reply), `unexpected` (the SDK failed in another way)."""

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
        """Could the request have taken effect anyway? This decides whether a failed
        CreateDispatch may be sent again (no: that could add a second agent).

        Ambiguous: no answer at all (timeout, connection dropped after sending), except
        when the connection was never made (`connect`: nothing was sent); a proxy answering
        for LiveKit (502/504, or any 5xx without a Twirp error body, code `unknown`);
        LiveKit's own `deadline_exceeded`/`canceled` (its handler may still finish); an
        HTTP 2xx we could not read (`malformed`: the work was done, the reply is garbage).
        Unambiguous: a Twirp error from LiveKit's handler (e.g. 503 `unavailable`, 429,
        any 4xx): LiveKit refused the request, nothing was created."""
        if self.status is None:
            return self.code != "connect"
        if self.status < 400:
            return True  # a success status whose body we could not read
        if self.status in (502, 504) or (self.status >= 500 and self.code == "unknown"):
            return True
        return self.code in ("deadline_exceeded", "canceled")

    @property
    def retryable(self) -> bool:
        """Transport failures, timeouts, 5xx (but 501) and 429 may succeed on retry; a
        4xx never will (LiveKit's own retry rule: docs/architecture.md, "LiveKit webhook delivery")."""
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

    async def room_exists(self, room: str, *, timeout: float) -> bool:
        """RoomService.ListRooms for `room`: answers at once, where ListDispatch on a
        missing room hangs until LiveKit's own deadline."""
        ...

    async def room_created_at(self, room: str, *, timeout: float) -> float | None:
        """As `room_exists`, with when LiveKit created the room (Unix seconds, its clock);
        None when it holds no such room."""
        ...

    async def trunk_numbers(self, trunk_id: str, *, timeout: float) -> builtins.list[str] | None:
        """The numbers of SIP inbound trunk `trunk_id`; None when LiveKit has no such trunk."""
        ...

    async def aclose(self) -> None: ...
