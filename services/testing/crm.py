"""CRM stand-in: a REST persona API serving ``GET {base_url}/{segment}`` as JSON.

Behaves like a plain REST CRM: known segment -> 200 JSON, unknown -> 404 with a JSON error
body. Tests inject latency, failures (the next n requests, or a seeded random share of
all of them: a flapping CRM), raw responses (malformed JSON, 429...), and read per-path
request counters.

In-process::

    async with CrmStandIn() as crm:
        crm.set_persona("+14155550123", {...})
        client_base = crm.base_url

Standalone (separate process)::

    python -m services.testing.crm --port 0 --latency 0.08 --personas personas.json

Control API (JSON bodies) for tests in another process:
    POST /_standin/personas     {"segment": {...persona...}, ...}   (merges)
    POST /_standin/response     {"segment": s, "status": 429, "body": "...", "content_type": "...",
                                 "headers": {"Content-Encoding": "gzip"}}
    POST /_standin/fail_next    {"n": 3, "status": 500, "body": ""}
    POST /_standin/fail_share   {"share": 0.5, "seed": 7}   (seed optional: keeps the current sequence)
    POST /_standin/latency      {"seconds": 0.2}
    POST /_standin/reset        clears counters, overrides, faults (keeps personas)
    GET  /_standin/state        {"total_requests": n, "requests": {segment: n}, "fail_next": n, "fail_share": f}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from services.testing._server import HttpStandIn, read_json, run_standalone

BASE_PATH = "/apis/api/public/mobile"


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    raw_path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Canned:
    status: int
    body: bytes
    content_type: str
    # Extra response headers sent verbatim (e.g. a Content-Encoding the body does not honour).
    headers: tuple[tuple[str, str], ...] = ()


class CrmStandIn(HttpStandIn):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, base_path: str = BASE_PATH, seed: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.base_path = base_path.rstrip("/")
        self._personas: dict[str, bytes] = {}
        self._overrides: dict[str, _Canned] = {}
        self._latency = 0.0
        self._fail_remaining = 0
        self._fail_with = _Canned(500, b"", "application/json")
        self._fail_share = 0.0
        # Seeded, so a flapping run fails the same requests each time it is repeated.
        self._random = random.Random(seed)
        self._counts: Counter[str] = Counter()
        self.total_requests = 0
        self.request_log: list[LoggedRequest] = []

    @property
    def base_url(self) -> str:
        return f"{self.origin}{self.base_path}"

    # -- configuration -------------------------------------------------------------------

    def set_persona(self, segment: str, body: dict[str, Any]) -> None:
        self._personas[segment] = json.dumps(body).encode()
        self._overrides.pop(segment, None)

    def remove_persona(self, segment: str) -> None:
        self._personas.pop(segment, None)
        self._overrides.pop(segment, None)

    def set_latency(self, seconds: float) -> None:
        self._latency = max(0.0, seconds)

    def fail_next(self, n: int, status: int = 500, body: bytes = b"") -> None:
        self._fail_remaining = n
        self._fail_with = _Canned(status, body, "application/json")

    def fail_share(self, share: float, *, seed: int | None = None) -> None:
        """Fail this share (0..1) of all requests from now on with a 500, picked at random:
        a flapping CRM. `seed` restarts the random sequence; 0 stops the flapping."""
        self._fail_share = min(1.0, max(0.0, share))
        if seed is not None:
            self._random.seed(seed)

    def set_response(
        self,
        segment: str,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve exactly these bytes for `segment`; `headers` are added as given (the
        body is not re-encoded, so `Content-Encoding: gzip` with plain bytes is a bad gzip body)."""
        self._overrides[segment] = _Canned(status, body, content_type, tuple((headers or {}).items()))

    def clear_response(self, segment: str) -> None:
        self._overrides.pop(segment, None)

    def reset(self) -> None:
        """Forget counters, logs, overrides and pending faults; keep personas."""
        self._overrides.clear()
        self._fail_remaining = 0
        self._fail_share = 0.0
        self._latency = 0.0
        self._counts.clear()
        self.total_requests = 0
        self.request_log.clear()

    # -- observation ---------------------------------------------------------------------

    def requests_for(self, segment: str) -> int:
        return self._counts[segment]

    def state(self) -> dict[str, Any]:
        return {
            "total_requests": self.total_requests,
            "requests": dict(self._counts),
            "fail_next": self._fail_remaining,
            "fail_share": self._fail_share,
            "latency": self._latency,
        }

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.total_requests += 1
        self.request_log.append(LoggedRequest(request.method, request.raw_path, dict(request.headers)))
        segment = self._segment_of(request)
        if segment is not None:
            self._counts[segment] += 1
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._fail_remaining > 0:
            self._fail_remaining -= 1
            return _respond(self._fail_with)
        if self._fail_share and self._random.random() < self._fail_share:
            return _respond(_FLAPPED)
        if segment is None:
            return web.json_response({"error": "not_found", "message": f"no route for {request.path}"}, status=404)
        if segment in self._overrides:
            return _respond(self._overrides[segment])
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"error": "method_not_allowed"}, status=405, headers={"Allow": "GET"})
        body = self._personas.get(segment)
        if body is None:
            return web.json_response({"error": "not_found", "message": f"no persona for {segment}"}, status=404)
        return web.Response(status=200, body=body, content_type="application/json")

    def _segment_of(self, request: web.Request) -> str | None:
        """The single path segment after the base path, percent-decoded; None for any other shape."""
        raw = request.raw_path.split("?", 1)[0]
        prefix = self.base_path + "/"
        if not raw.startswith(prefix):
            return None
        rest = raw[len(prefix) :]
        if not rest or "/" in rest:
            return None
        # unquote, not unquote_plus: in a path '+' is a literal plus (E.164 numbers keep it).
        return unquote(rest)

    async def _control(self, name: str, request: web.Request) -> web.StreamResponse:
        if name == "state" and request.method == "GET":
            return web.json_response(self.state())
        if request.method != "POST":
            return await super()._control(name, request)
        data = await read_json(request)
        if name == "personas":
            for segment, body in data.items():
                self.set_persona(segment, body)
        elif name == "response":
            self.set_response(
                data["segment"],
                int(data["status"]),
                str(data.get("body", "")).encode(),
                data.get("content_type", "application/json"),
                headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
            )
        elif name == "fail_next":
            self.fail_next(int(data.get("n", 1)), int(data.get("status", 500)), str(data.get("body", "")).encode())
        elif name == "fail_share":
            seed = data.get("seed")
            self.fail_share(float(data["share"]), seed=None if seed is None else int(seed))
        elif name == "latency":
            self.set_latency(float(data["seconds"]))
        elif name == "reset":
            self.reset()
        else:
            return await super()._control(name, request)
        return web.json_response(self.state())


_FLAPPED = _Canned(500, b'{"error": "internal", "message": "flapping"}', "application/json")


def _respond(canned: _Canned) -> web.Response:
    headers = {"Content-Type": canned.content_type, **dict(canned.headers)}
    return web.Response(status=canned.status, body=canned.body, headers=headers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.testing.crm", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--personas", type=Path, help="JSON object {segment: persona body}")
    parser.add_argument("--base-path", default=BASE_PATH)
    args = parser.parse_args(argv)

    async def make() -> CrmStandIn:
        crm = CrmStandIn(host=args.host, port=args.port, base_path=args.base_path)
        crm.set_latency(args.latency)
        if args.personas:
            for segment, body in json.loads(args.personas.read_text()).items():
                crm.set_persona(segment, body)
        return await crm.start()

    run_standalone(make)


if __name__ == "__main__":
    main()
