"""Signed call events out: `call.started`, `call.answered` and `call.ended`, POSTed to
CALL_EVENTS_URL from a transactional outbox, so an event is delivered at least once even
across restarts and none is lost while the receiver is down.

    record transaction: event stored → record folded → a row in call_outbox per change
                        (started / answered / ended), unique per room + type
    OutboxDeliverer:    due rows → POST, signed → delivered, or retried with backoff

Each POST carries `Idempotency-Key` (room + type: the same on every retry, so the receiver
drops duplicates), `X-Friday-Timestamp` (unix seconds of this attempt) and
`X-Friday-Signature: t=<timestamp>,v1=<hex HMAC-SHA256(CALL_EVENTS_SECRET, "<timestamp>." + body)>`.
A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses
timestamps older than a few minutes (a replayed request)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx
from google.protobuf import json_format

from friday.calls.v1.call_pb2 import Call, CallOutcome
from services.common.background_tasks import cancel_and_wait
from services.common.env import ConfigError, Environment, setting

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Friday-Signature"
TIMESTAMP_HEADER = "X-Friday-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
STARTED, ANSWERED, ENDED = "call.started", "call.answered", "call.ended"


@dataclass(frozen=True)
class CallEventsConfig:
    # Where signed call events go; None = none are written or sent.
    url: str | None = setting("CALL_EVENTS_URL", None)
    secret: str = setting("CALL_EVENTS_SECRET", "", secret=True)
    timeout_seconds: float = setting("CALL_EVENTS_TIMEOUT_SECONDS", 5.0)
    initial_backoff_seconds: float = setting("CALL_EVENTS_INITIAL_BACKOFF_SECONDS", 1.0)
    max_backoff_seconds: float = setting("CALL_EVENTS_MAX_BACKOFF_SECONDS", 60.0)
    poll_interval_seconds: float = setting("CALL_EVENTS_POLL_INTERVAL_SECONDS", 1.0)
    # A row being delivered is not offered again for this long (another replica, or this
    # one after a crash mid-POST, picks it up after): at least once, never lost.
    lease_seconds: float = setting("CALL_EVENTS_LEASE_SECONDS", 30.0)
    batch_size: int = setting("CALL_EVENTS_BATCH_SIZE", 50)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CallEventsConfig:
        config = Environment(environ).fields(cls)
        if config.url and len(config.secret) < 32:
            raise ConfigError("CALL_EVENTS_SECRET must be set, at least 32 characters, when CALL_EVENTS_URL is")
        return config


@dataclass(frozen=True)
class OutboxMessage:
    idempotency_key: str
    event_type: str
    room: str
    body: bytes


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idempotency_key: str
    body: bytes
    attempts: int


def changes(before: Call | None, after: Call, now_ms: int) -> list[OutboxMessage]:
    """The call events a record change makes: each one once per call (the key says so)."""
    if not after.HasField("started_at"):
        return []
    had = before if before is not None and before.HasField("started_at") else None
    wanted = [STARTED] if had is None else []
    answered = CallOutcome.CALL_OUTCOME_ANSWERED
    if after.outcome == answered and (had is None or had.outcome != answered):
        wanted.append(ANSWERED)
    if after.HasField("ended_at") and (had is None or not had.HasField("ended_at")):
        wanted.append(ENDED)
    messages = []
    for event_type in wanted:
        key = f"{after.room}:{event_type}"
        body = {
            "id": key,
            "type": event_type,
            "created_at_ms": now_ms,
            "call": json_format.MessageToDict(after, preserving_proto_field_name=True),
        }
        messages.append(OutboxMessage(key, event_type, after.room, json.dumps(body, sort_keys=True).encode()))
    return messages


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300) -> bool:
    """What a receiver does (and the test receiver does): recompute, compare, check freshness."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


class OutboxStore(Protocol):
    """What the deliverer needs of the store (SqlCallStore has it)."""

    async def claim_outbox(self, now_ms: int, lease_ms: int, limit: int) -> list[OutboxItem]: ...

    async def outbox_delivered(self, item_id: int, now_ms: int) -> None: ...

    async def outbox_failed(self, item_id: int, next_attempt_at_ms: int, error: str) -> None: ...


class OutboxDeliverer:
    def __init__(
        self,
        store: OutboxStore,
        config: CallEventsConfig,
        clock_ms: Callable[[], int],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._clock_ms = clock_ms
        self._http = httpx.AsyncClient(timeout=config.timeout_seconds, transport=transport)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._deliver_forever(), name="calls-outbox")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._http.aclose()

    async def deliver_due(self) -> int:
        """One pass over the due rows; the number delivered."""
        assert self._config.url is not None
        now = self._clock_ms()
        items = await self._store.claim_outbox(now, round(self._config.lease_seconds * 1000), self._config.batch_size)
        delivered = 0
        for item in items:
            error = await self._post(item)
            if error is None:
                await self._store.outbox_delivered(item.id, self._clock_ms())
                delivered += 1
                continue
            doubling = 2 ** min(item.attempts, 30)  # retried for as long as it takes: keep the power finite
            backoff = min(self._config.max_backoff_seconds, self._config.initial_backoff_seconds * doubling)
            await self._store.outbox_failed(item.id, self._clock_ms() + round(backoff * 1000), error)
            key = item.idempotency_key
            logger.warning("call event %s not delivered (attempt %d): %s", key, item.attempts + 1, error)
        return delivered

    async def _post(self, item: OutboxItem) -> str | None:
        timestamp = self._clock_ms() // 1000
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: item.idempotency_key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._config.secret, timestamp, item.body),
        }
        assert self._config.url is not None
        try:
            response = await self._http.post(self._config.url, content=item.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _deliver_forever(self) -> None:
        while True:
            try:
                if await self.deliver_due() == self._config.batch_size:
                    continue  # more are waiting
            except Exception:  # the deliverer must outlive a database hiccup
                logger.exception("call event delivery pass failed")
            await asyncio.sleep(self._config.poll_interval_seconds)
