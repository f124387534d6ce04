"""A receiver of Friday's signed call events, as a customer would write one: it checks
`X-Friday-Signature` itself (HMAC-SHA256 over "<timestamp>." + the raw body, from the
README's description, not from our signing code), refuses stale timestamps, answers 2xx,
and keeps every delivery, so tests can count events per idempotency key (duplicates are
allowed on the wire; the key makes them harmless). `accepting = False` answers 503, as a
receiver that is down behind its load balancer does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Delivery:
    key: str
    event_type: str
    signature_ok: bool
    body: dict[str, Any]


@dataclass
class CallEventsReceiver:
    secret: str
    accepting: bool = True
    tolerance_seconds: int = 300
    deliveries: list[Delivery] = field(default_factory=list)
    refused_while_down: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/call-events"

    def _valid(self, header: str, body: bytes) -> bool:
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        try:
            timestamp = int(fields["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - timestamp) > self.tolerance_seconds:
            return False
        expected = hmac.new(self.secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields.get("v1", ""))

    async def _receive(self, request: web.Request) -> web.Response:
        if not self.accepting:
            self.refused_while_down += 1
            return web.Response(status=503)
        body = await request.read()
        ok = self._valid(request.headers.get("X-Friday-Signature", ""), body)
        if not ok:
            return web.Response(status=401)
        parsed = json.loads(body)
        self.deliveries.append(Delivery(request.headers.get("Idempotency-Key", ""), parsed.get("type", ""), ok, parsed))
        return web.Response(status=204)

    @property
    def unique(self) -> dict[str, Delivery]:
        """The first delivery of each idempotency key: what a deduplicating receiver acts on."""
        first: dict[str, Delivery] = {}
        for delivery in self.deliveries:
            first.setdefault(delivery.key, delivery)
        return first

    @property
    def duplicates(self) -> int:
        return len(self.deliveries) - len(self.unique)

    async def start(self, port: int | None = None) -> None:
        app = web.Application()
        app.router.add_post("/call-events", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port if port is not None else self.port, reuse_address=True)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
