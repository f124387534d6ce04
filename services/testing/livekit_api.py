"""LiveKit API stand-in: livekit-server's Twirp API for agent dispatch, rooms and SIP trunks,
with the rooms, dispatches, agent workers and jobs behind it.

* ``POST /twirp/livekit.AgentDispatchService/{CreateDispatch,ListDispatch,DeleteDispatch}``,
  ``/twirp/livekit.RoomService/{ListRooms,CreateRoom,DeleteRoom}`` and
  ``/twirp/livekit.SIP/ListSIPInboundTrunk``: protobuf or JSON bodies, answered in the
  request's encoding; Twirp errors as JSON ``{code, msg}``. What each answers, and when it
  refuses, is in ``livekit_services``; rooms and dispatches in ``livekit_rooms``; workers and
  jobs in ``agent_workers``; trunks in ``livekit_sip``.
* ``Authorization: Bearer <JWT>`` verified as livekit-server does (``twirp.py``), with the
  grant each call needs: ``roomAdmin`` + ``room`` for dispatch calls, ``roomList`` for
  ListRooms, ``roomCreate`` for CreateRoom/DeleteRoom, ``sip.admin`` for SIP.
* Faults for tests: latency, failures, delays, unreadable answers (``fail_next`` & co.).
* ``GET /settings/regions`` answers an empty region list, as a self-hosted server would.

A bare ``LiveKitStandIn()`` is a fresh server: no rooms, no agent workers. A dispatch then
gets no job, as with livekit-server; register a worker for agent names that should get one.

* ``GET /agent``: the agent protocol's WebSocket for real livekit-agents workers
  (``agent_protocol``); each connected worker is a ``workers`` entry like a scripted one.

Not modelled: the rest of RoomService (participants, tracks, data), egress, ingress, SIP calls
and dispatch rules, RTC signalling (``/rtc`` answers 404, after ``rtc_hold_seconds``) and
media, webhooks (``livekit_webhooks`` builds them, ``services.chaos.redelivery`` delivers
them), and several nodes.

In-process::

    async with LiveKitStandIn() as lk:
        lk.workers.register("friday-ai-agent")  # agent_workers.AgentWorkers
        lk.create_room("call-1")                # as when the caller joined it
        api = LiveKitAPI(lk.url, lk.api_key, lk.api_secret)

Standalone::

    python -m services.testing.livekit_api --port 0 --api-key K --api-secret S --latency 0.03

Control API for tests in another process (``livekit_control`` lists every endpoint)::

    POST /_standin/workers {"agent_name": "friday-ai-agent", "accept_delay": 0.0, "outcome": "runs"}
    POST /_standin/rooms {"names": ["call-1", "call-2"]}
    GET  /_standin/state
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web
from livekit.protocol.agent_dispatch import AgentDispatch, ListAgentDispatchRequest
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.sip import SIPInboundTrunkInfo

from . import livekit_control as control
from ._server import HttpStandIn, run_standalone
from .agent_protocol import AGENT_PATH, AgentProtocol
from .agent_workers import JOB_REQUEST_TIMEOUT_SECONDS, AgentWorkers
from .livekit_rooms import Rooms
from .livekit_services import DISPATCH_SERVICE, MISSING_ROOM_DELAY_SECONDS, LiveKitServices
from .livekit_sip import InboundTrunks
from .livekit_transfers import SipTransfers
from .twirp import JSON, PROTOBUF, MiddlewareReject, TokenVerifier, TwirpError, content_type_of, decode, encode

DEFAULT_API_KEY = "devkey-test"
# >= 32 bytes so PyJWT/livekit-api do not warn about a weak HMAC key.
DEFAULT_API_SECRET = "standin-secret-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class CallRecord:
    method: str  # Twirp method name as requested, e.g. "CreateDispatch"
    room: str  # "" when the body could not be read or names no room
    status: int  # HTTP status answered
    code: str  # "" on success, Twirp code (or "middleware") on failure
    time: float  # time.time() when the answer was produced
    content_type: str


@dataclass
class _NextCalls:
    """A fault for the next `n` Twirp calls, of one method or (method None) of any."""

    n: int = 0
    method: str | None = None
    seconds: float = 0.0

    def take(self, method: str) -> bool:
        if self.n > 0 and (self.method is None or self.method == method):
            self.n -= 1
            return True
        return False


# Not a protobuf message (a truncated varint tag): the SDK's FromString raises DecodeError.
GARBLED_BODY = b"\xff\xff\xff\xff"


class LiveKitStandIn(HttpStandIn):
    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_create: bool = True,
        missing_room_delay_seconds: float = MISSING_ROOM_DELAY_SECONDS,
        job_request_timeout_seconds: float = JOB_REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.api_secret = api_secret
        self.workers = AgentWorkers(job_request_timeout=job_request_timeout_seconds)
        self._rooms = Rooms(self.workers)
        self._trunks = InboundTrunks()
        self._services = LiveKitServices(
            self._rooms, self._trunks, auto_create=auto_create, missing_room_delay_seconds=missing_room_delay_seconds
        )
        self._tokens = TokenVerifier(api_key, api_secret)
        self.agent_protocol = AgentProtocol(self.workers, self._tokens, url=lambda: self.url)
        self._latency = 0.0
        self._fail_remaining = 0
        self._fail_with = TwirpError("unavailable", "injected failure", status=503)
        self._delay = _NextCalls()
        self._garble = _NextCalls()
        self._hold = _NextCalls()
        self._hold_gate = asyncio.Event()
        self._held = 0
        self.held_rooms: list[str] = []  # the rooms of the calls `hold_next` held, in order
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.calls: list[CallRecord] = []
        # RTC signalling (`/rtc…`) is not modelled: answered 404 after this many seconds (or at
        # stop), so a real worker's job can be kept waiting for its room instead of failing at once.
        self.rtc_hold_seconds = 0.0
        self._stopping = asyncio.Event()

    @property
    def url(self) -> str:
        return self.origin

    async def start(self) -> Self:
        self._stopping.clear()
        return await super().start()

    async def stop(self) -> None:
        self._stopping.set()
        self._hold_gate.set()
        await self.agent_protocol.close()
        await super().stop()
        self._rooms.cancel_background()

    @property
    def auto_create(self) -> bool:
        """room.auto_create: CreateDispatch creates a missing room."""
        return self._services.auto_create

    @property
    def missing_room_delay_seconds(self) -> float:
        """How long a call for a room the server does not hold waits for its 408."""
        return self._services.missing_room_delay_seconds

    # -- configuration -------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        self._latency = max(0.0, seconds)

    def fail_next(self, n: int, status: int = 503, code: str = "unavailable") -> None:
        self._fail_remaining = n
        self._fail_with = TwirpError(code, "injected failure", status=status)

    def delay_next(self, n: int, seconds: float, method: str | None = None) -> None:
        """Delay the next `n` calls (of `method` only, when given) by `seconds` more before
        they are handled. The work is still done after the delay even if the client gave
        up meanwhile, as livekit-server does: a create that timed out may land later."""
        self._delay = _NextCalls(n, method, max(0.0, seconds))

    def hold_next(self, n: int, method: str | None = None) -> None:
        """Hold the next `n` calls (of `method` only, when given) until `release_held()`:
        LiveKit slow to answer for exactly as long as a test needs. As with `delay_next`,
        the work is done once released even if the client is gone (crashed) meanwhile."""
        self._hold = _NextCalls(n, method)
        self._hold_gate = asyncio.Event()

    def release_held(self) -> None:
        """Let every held call go on (they are then handled in the order they came)."""
        self._hold_gate.set()

    @property
    def held(self) -> int:
        """Calls being held by `hold_next` right now."""
        return self._held

    def garble_next(self, n: int, method: str | None = None) -> None:
        """Handle the next `n` successful calls (of `method` only, when given) normally but
        answer HTTP 200 with a body that is not a protobuf message (a broken proxy, a
        truncated reply): the create did land, the client cannot read that it did."""
        self._garble = _NextCalls(n, method)

    def create_room(self, name: str) -> Room:
        """The room `name` exists from now on (as when a SIP caller joined it); idempotent."""
        return self._rooms.create(name).snapshot()

    def delete_room(self, name: str) -> bool:
        """Close `name`: its dispatches go, its agents leave. False when there was no such room."""
        return self._rooms.close(name)

    def add_sip_participant(self, room: str, participant: ParticipantInfo) -> None:
        """A caller's SIP leg in `room` (created if absent), e.g. `sip_participants.inbound(...)`:
        what TransferSIPParticipant looks up."""
        self._rooms.create(room).sip_participants[participant.identity] = participant

    def sip_participants(self, room: str) -> list[str]:
        record = self._rooms.get(room)
        return sorted(record.sip_participants) if record is not None else []

    @property
    def transfers(self) -> SipTransfers:
        """The TransferSIPParticipant calls that reached the SIP bridge, and `fail_next`."""
        return self._services.transfers

    def add_inbound_trunk(self, trunk_id: str, numbers: list[str] | tuple[str, ...] = (), **fields: Any) -> None:
        """A SIP inbound trunk for ListSIPInboundTrunk; `fields` are other SIPInboundTrunkInfo fields."""
        self._trunks.add(SIPInboundTrunkInfo(sip_trunk_id=trunk_id, numbers=list(numbers), **fields))

    def reset(self) -> None:
        """Forget rooms (with their dispatches and jobs), calls, trunks and faults; workers stay registered."""
        self._rooms.clear()
        self._trunks.clear()
        self.reset_calls()
        self._fail_remaining = 0
        self._latency = 0.0
        self._delay = _NextCalls()
        self._garble = _NextCalls()
        self._hold = _NextCalls()
        self._hold_gate.set()

    def reset_calls(self) -> None:
        """Zero the call log and the create counter only."""
        self.calls.clear()
        self._services.created = 0

    # -- observation ---------------------------------------------------------------------

    def dispatches(self, room: str, *, include_implicit: bool = False) -> list[AgentDispatch]:
        """The dispatches CreateDispatch made in `room`, oldest first; ListDispatch also
        answers the room's implicit one (`include_implicit=True` adds it here)."""
        record = self._rooms.get(room)
        return [] if record is None else record.dispatch_list(include_implicit=include_implicit)

    def all_dispatches(self, *, include_implicit: bool = False) -> list[AgentDispatch]:
        return [d for name in self._rooms.names() for d in self.dispatches(name, include_implicit=include_implicit)]

    def rooms(self) -> list[Room]:
        return self._rooms.list_rooms()

    def has_room(self, name: str) -> bool:
        return self._rooms.get(name) is not None

    def agents(self, room: str) -> list[str]:
        """Identities of the agents in `room` (participants of kind AGENT)."""
        record = self._rooms.get(room)
        return [] if record is None else list(record.agents)

    async def settle(self) -> None:
        """Until every job launch and termination under way has finished (each runs after
        the Twirp call that caused it has answered)."""
        await self._rooms.settle()

    def peak_dispatches(self, room: str) -> int:
        """The most dispatches with an agent name `room` held at once: above 1, the call
        was doubled at some point, even if only one is left."""
        record = self._rooms.get(room)
        return 0 if record is None else record.peak_named_dispatches

    def create_count(self) -> int:
        return self._services.created

    @property
    def failures_pending(self) -> int:
        """Calls `fail_next` will still fail."""
        return self._fail_remaining

    @property
    def in_flight(self) -> int:
        """Twirp calls being handled right now (e.g. a delayed create)."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Returns once no Twirp call is being handled, e.g. until a delayed create whose
        client gave up has landed, so a test can count what LiveKit ended up holding."""
        await self._idle.wait()

    def state(self) -> dict[str, Any]:
        return control.state(self, self._rooms, self._trunks)

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/settings/regions":
            # Self-hosted livekit-server has no region list; an empty one keeps the SDK on this host.
            return web.json_response({"regions": []})
        if request.path == AGENT_PATH:
            return await self.agent_protocol.handle(request)
        if request.path.startswith("/rtc") and self.rtc_hold_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.rtc_hold_seconds)
        if not request.path.startswith("/twirp/"):
            return web.Response(status=404, text="404 page not found\n")
        method = request.path.rsplit("/", 1)[-1]
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._handle_twirp(request, method)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle_twirp(self, request: web.Request, method: str) -> web.StreamResponse:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._delay.take(method):
            await asyncio.sleep(self._delay.seconds)
        if self._hold.take(method):
            gate = self._hold_gate
            self.held_rooms.append(self._room_hint(request.path, body, content_type))
            self._held += 1
            try:
                await gate.wait()
            finally:
                self._held -= 1
        try:
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                raise self._fail_with
            grants = self._tokens.grants(request.headers.get("Authorization"))
            handler = self._services.methods.get(request.path[len("/twirp/") :])
            if handler is None or request.method != "POST":
                raise TwirpError(
                    "bad_route",
                    f"no handler for path {request.path!r}"
                    if handler is None
                    else f"unsupported method {request.method!r} (only POST is allowed)",
                    meta={"twirp_invalid_route": f"{request.method} {request.path}"},
                )
            content_type = content_type_of(request)
            reply, room = await handler(body, content_type, grants)
            self._record(method, room, 200, "", content_type)
            if self._garble.take(method):
                return web.Response(status=200, body=GARBLED_BODY, content_type=content_type)
            return encode(reply, content_type)
        except TwirpError as err:
            self._record(method, self._room_hint(request.path, body, content_type), err.status, err.code, content_type)
            return err.response()
        except MiddlewareReject as rej:
            self._record(method, self._room_hint(request.path, body, content_type), 401, "middleware", content_type)
            return rej.response()

    def _record(self, method: str, room: str, status: int, code: str, content_type: str) -> None:
        self.calls.append(CallRecord(method, room, status, code, time.time(), content_type))

    @staticmethod
    def _room_hint(path: str, body: bytes, content_type: str) -> str:
        """Best-effort room of a rejected dispatch request, for the call log only."""
        ct = content_type.split(";", 1)[0].strip().lower()
        if ct not in (JSON, PROTOBUF) or DISPATCH_SERVICE not in path:
            return ""
        try:
            # room is field 2 with the same name in all three dispatch request messages.
            return decode(body, ct, ListAgentDispatchRequest()).room
        except TwirpError:
            return ""

    async def _control(self, name: str, request: web.Request) -> web.StreamResponse:
        answer = await control.handle(self, name, request)
        return answer if answer is not None else await super()._control(name, request)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.testing.livekit_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every Twirp call")
    parser.add_argument("--no-auto-create", action="store_true", help="room.auto_create off")
    parser.add_argument(
        "--missing-room-delay", type=float, default=MISSING_ROOM_DELAY_SECONDS, help="seconds to a missing room's 408"
    )
    parser.add_argument("--log-level", default="INFO", help="the stand-in's own log lines (stderr)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="livekit-standin %(levelname)s %(message)s")

    async def make() -> LiveKitStandIn:
        lk = LiveKitStandIn(
            args.api_key,
            args.api_secret,
            host=args.host,
            port=args.port,
            auto_create=not args.no_auto_create,
            missing_room_delay_seconds=args.missing_room_delay,
        )
        lk.set_latency(args.latency)
        return await lk.start()

    run_standalone(make)


if __name__ == "__main__":
    main()
