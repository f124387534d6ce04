"""LiveKit API stand-in: ``livekit.AgentDispatchService`` over Twirp, as livekit-server serves it.

* ``POST /twirp/livekit.AgentDispatchService/{CreateDispatch,ListDispatch,DeleteDispatch}``,
  protobuf or JSON bodies, answered in the request's encoding.
* ``Authorization: Bearer <JWT>`` verified like livekit-server (see ``twirp.py``): HS256 with the
  configured secret, ``iss`` = API key, ``exp`` required, ``nbf``/``exp`` with 60 s leeway,
  ``video.roomAdmin`` and ``video.room`` == the request's room.
* ``CreateDispatch`` never dedupes: each call adds one dispatch (``AD_`` + 12 chars), as LiveKit.
* ``GET /settings/regions`` answers an empty region list, as a self-hosted server would
  (the SDK only fails over for LiveKit Cloud hosts anyway).

In-process::

    async with LiveKitStandIn() as lk:
        api = LiveKitAPI(lk.url, lk.api_key, lk.api_secret)

Standalone::

    python -m services.testing.livekit_api --port 0 --api-key K --api-secret S --latency 0.03

Control API for tests in another process:
    POST /_standin/fail_next {"n": 2, "status": 503, "code": "unavailable"}
    POST /_standin/latency   {"seconds": 0.1}
    POST /_standin/delay_next {"n": 1, "seconds": 1.3, "method": "CreateDispatch"}  (method optional)
    POST /_standin/garble_next {"n": 1, "method": "CreateDispatch"}  (method optional)
    POST /_standin/reset     forget dispatches, calls and faults
    GET  /_standin/state     {"create_count", "calls": [...], "dispatches": {room: [AgentDispatch as JSON]}}
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol.agent_dispatch import (
    AgentDispatch,
    AgentDispatchState,
    CreateAgentDispatchRequest,
    DeleteAgentDispatchRequest,
    ListAgentDispatchRequest,
    ListAgentDispatchResponse,
)

from services.testing._server import HttpStandIn, read_json, run_standalone
from services.testing.twirp import (
    JSON,
    PROTOBUF,
    Grants,
    MiddlewareReject,
    TokenVerifier,
    TwirpError,
    content_type_of,
    decode,
    encode,
    ensure_admin,
)

SERVICE_PREFIX = "/twirp/livekit.AgentDispatchService/"
DEFAULT_API_KEY = "devkey-test"
# >= 32 bytes so PyJWT/livekit-api do not warn about a weak HMAC key.
DEFAULT_API_SECRET = "standin-secret-0123456789abcdefghijklmnopqrstuvwxyz"
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class CallRecord:
    method: str  # Twirp method name as requested, e.g. "CreateDispatch"
    room: str  # "" when the body could not be read
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


def new_dispatch_id() -> str:
    # One getrandom() for the 12 characters, not one per character (secrets.choice).
    return "AD_" + "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in secrets.token_bytes(12))


class LiveKitStandIn(HttpStandIn):
    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.api_secret = api_secret
        self._tokens = TokenVerifier(api_key, api_secret)
        self._latency = 0.0
        self._fail_remaining = 0
        self._fail_with = TwirpError("unavailable", "injected failure", status=503)
        self._delay = _NextCalls()
        self._garble = _NextCalls()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._by_room: dict[str, list[AgentDispatch]] = {}
        self.calls: list[CallRecord] = []
        self._created = 0  # a counter, not a scan of calls: the benchmark reads it often
        self._methods: dict[str, Callable[[bytes, str, Grants], tuple[Message, str]]] = {
            "CreateDispatch": self._create,
            "ListDispatch": self._list,
            "DeleteDispatch": self._delete,
        }

    @property
    def url(self) -> str:
        return self.origin

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

    def garble_next(self, n: int, method: str | None = None) -> None:
        """Handle the next `n` successful calls (of `method` only, when given) normally but
        answer HTTP 200 with a body that is not a protobuf message (a broken proxy, a
        truncated reply): the create did land, the client cannot read that it did."""
        self._garble = _NextCalls(n, method)

    def reset(self) -> None:
        self._by_room.clear()
        self.calls.clear()
        self._created = 0
        self._fail_remaining = 0
        self._latency = 0.0
        self._delay = _NextCalls()
        self._garble = _NextCalls()

    # -- observation ---------------------------------------------------------------------

    def dispatches(self, room: str) -> list[AgentDispatch]:
        return [_copy(d) for d in self._by_room.get(room, [])]

    def all_dispatches(self) -> list[AgentDispatch]:
        return [_copy(d) for ds in self._by_room.values() for d in ds]

    def create_count(self) -> int:
        return self._created

    @property
    def in_flight(self) -> int:
        """Twirp calls being handled right now (e.g. a delayed create)."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Returns once no Twirp call is being handled, e.g. until a delayed create whose
        client gave up has landed, so a test can count what LiveKit ended up holding."""
        await self._idle.wait()

    def state(self) -> dict[str, Any]:
        return {
            "create_count": self.create_count(),
            "fail_next": self._fail_remaining,
            "calls": [asdict(c) for c in self.calls],
            "dispatches": {
                room: [json_format.MessageToDict(d, preserving_proto_field_name=True) for d in ds]
                for room, ds in self._by_room.items()
            },
        }

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/settings/regions":
            # Self-hosted livekit-server has no region list; an empty one keeps the SDK on this host.
            return web.json_response({"regions": []})
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
        try:
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                raise self._fail_with
            grants = self._tokens.grants(request.headers.get("Authorization"))
            handler = self._methods.get(method) if request.path.startswith(SERVICE_PREFIX) else None
            if handler is None or request.method != "POST":
                raise TwirpError(
                    "bad_route",
                    f"no handler for path {request.path!r}"
                    if handler is None
                    else f"unsupported method {request.method!r} (only POST is allowed)",
                    meta={"twirp_invalid_route": f"{request.method} {request.path}"},
                )
            content_type = content_type_of(request)
            reply, room = handler(body, content_type, grants)
            self._record(method, room, 200, "", content_type)
            if self._garble.take(method):
                return web.Response(status=200, body=GARBLED_BODY, content_type=content_type)
            return encode(reply, content_type)
        except TwirpError as err:
            self._record(method, self._room_hint(body, content_type), err.status, err.code, content_type)
            return err.response()
        except MiddlewareReject as rej:
            self._record(method, self._room_hint(body, content_type), 401, "middleware", content_type)
            return rej.response()

    # Handlers return (reply, room); the caller encodes the reply in the request's encoding.

    def _create(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, CreateAgentDispatchRequest())
        ensure_admin(grants, req.room)
        if not req.room:
            raise TwirpError("invalid_argument", "no room name")
        dispatch = AgentDispatch(
            id=new_dispatch_id(),
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
            restart_policy=req.restart_policy,
            deployment=req.deployment,
            state=AgentDispatchState(created_at=time.time_ns()),
        )
        dispatch.attributes.update(req.attributes)
        self._by_room.setdefault(req.room, []).append(dispatch)
        self._created += 1
        return dispatch, req.room

    def _list(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, ListAgentDispatchRequest())
        ensure_admin(grants, req.room)
        found = [d for d in self._by_room.get(req.room, []) if not req.dispatch_id or d.id == req.dispatch_id]
        return ListAgentDispatchResponse(agent_dispatches=found), req.room

    def _delete(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, DeleteAgentDispatchRequest())
        ensure_admin(grants, req.room)
        room_dispatches = self._by_room.get(req.room, [])
        for i, d in enumerate(room_dispatches):
            if d.id == req.dispatch_id:
                deleted = room_dispatches.pop(i)
                deleted.state.deleted_at = time.time_ns()
                return deleted, req.room
        raise TwirpError("not_found", "dispatch ID not found")

    def _record(self, method: str, room: str, status: int, code: str, content_type: str) -> None:
        self.calls.append(CallRecord(method, room, status, code, time.time(), content_type))

    @staticmethod
    def _room_hint(body: bytes, content_type: str) -> str:
        """Best-effort room of a rejected request, for the call log only."""
        ct = content_type.split(";", 1)[0].strip().lower()
        if ct not in (JSON, PROTOBUF):
            return ""
        try:
            # room is field 2 with the same name in all three request messages.
            return decode(body, ct, ListAgentDispatchRequest()).room
        except TwirpError:
            return ""

    async def _control(self, name: str, request: web.Request) -> web.StreamResponse:
        if name == "state" and request.method == "GET":
            return web.json_response(self.state())
        if request.method != "POST":
            return await super()._control(name, request)
        data = await read_json(request)
        if name == "fail_next":
            self.fail_next(int(data.get("n", 1)), int(data.get("status", 503)), str(data.get("code", "unavailable")))
        elif name == "latency":
            self.set_latency(float(data["seconds"]))
        elif name == "delay_next":
            method = data.get("method")
            self.delay_next(int(data.get("n", 1)), float(data["seconds"]), str(method) if method else None)
        elif name == "garble_next":
            method = data.get("method")
            self.garble_next(int(data.get("n", 1)), str(method) if method else None)
        elif name == "reset":
            self.reset()
        else:
            return await super()._control(name, request)
        return web.json_response({"ok": True, "create_count": self.create_count(), "fail_next": self._fail_remaining})


def _copy(dispatch: AgentDispatch) -> AgentDispatch:
    out = AgentDispatch()
    out.CopyFrom(dispatch)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.testing.livekit_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every Twirp call")
    args = parser.parse_args(argv)

    async def make() -> LiveKitStandIn:
        lk = LiveKitStandIn(args.api_key, args.api_secret, host=args.host, port=args.port)
        lk.set_latency(args.latency)
        return await lk.start()

    run_standalone(make)


if __name__ == "__main__":
    main()
