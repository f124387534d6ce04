"""LiveKit's webhook delivery, as livekit/protocol's `webhook/` package does it
(`resource_url_notifier.go`, `resource_queue.go`, `notifier.go`, with go-retryablehttp
v0.7.8's defaults), for everything here that plays LiveKit sending webhooks.

What is modelled:

* One sender per webhook URL (`WebhookSender`); several URLs get the same event each
  (`WebhookNotifier`), and when one URL's queue is full the URLs after it do not get it.
* Per sender, one FIFO queue per room (livekit's EventKey: the room name for every event
  that has a room): a slow answer delays that room's later events, never another room's.
* A queue holding 200 events that wait is full: a new event is dropped ("queue is full").
* An event that waited in its queue longer than 30 s is dropped when its turn comes ("age"),
  without being sent.
* Sending: the body and its token are made when the event's turn comes (protojson, the JWT
  valid 5 minutes), then every attempt re-sends the same bytes and headers, so the same event
  id. No client timeout: a receiver that never answers holds the queue.
* Retries (go-retryablehttp `DefaultRetryPolicy`, `DefaultBackoff`): 5 attempts in all;
  retried on a transport error (not on a malformed URL or scheme), a 429, and a status of 0
  or >= 500 other than 501; a 2xx, 3xx or other 4xx ends the delivery. The wait before retry
  n (from 0) is 1 s * 2^n capped at 30 s — 1, 2, 4, 8 s — or, on a 429 or 503 with a
  `Retry-After` header (seconds or an HTTP date), exactly what it says, uncapped.
* `DeliveryPolicy.time_scale` multiplies every wait the model makes (backoff, Retry-After,
  the 30 s age), so tests can run LiveKit's schedule in milliseconds.

Not modelled: redirects (Go follows them; here a 3xx ends the delivery), the 5-minute sweep
of idle queues, event filters, per-call extra webhook URLs, and which events LiveKit sends.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from livekit.protocol.webhook import WebhookEvent

from services.common.background_tasks import cancel_and_wait
from services.testing import livekit_webhooks

QUEUE_FULL = "queue is full"
TOO_OLD = "age"


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 5  # go-retryablehttp RetryMax 4, plus the first attempt
    retry_wait_min: float = 1.0
    retry_wait_max: float = 30.0
    max_queue_depth: int = 200
    max_age_seconds: float = 30.0
    # livekit sets none (HTTPClientParams.ClientTimeout unset); a number is livekit's client_timeout option.
    client_timeout: float | None = None
    time_scale: float = 1.0

    def backoff(self, retry: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry `retry` (0 for the first retry), already scaled."""
        if response is not None and response.status_code in (429, 503):
            after = retry_after_seconds(response.headers.get("Retry-After"))
            if after is not None:
                return after * self.time_scale
        return min(self.retry_wait_min * 2**retry, self.retry_wait_max) * self.time_scale


# The schedule the defaults give: the waits before retries 1..4.
BACKOFF_SECONDS: tuple[float, ...] = tuple(DeliveryPolicy().backoff(n, None) for n in range(4))
MAX_ATTEMPTS = DeliveryPolicy().max_attempts


def is_retried(status: int | None) -> bool:
    """go-retryablehttp's verdict on an answer; None = a transport failure (no status came back)."""
    if status is None:
        return True
    return status == 429 or status == 0 or (status >= 500 and status != 501)


def retry_after_seconds(value: str | None) -> float | None:
    """go-retryablehttp parseRetryAfterHeader: whole seconds (not negative) or an HTTP date."""
    if not value:
        return None
    if value.lstrip("-").isdigit():
        seconds = int(value)
        return float(seconds) if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Delivery:
    """What happened to one event at one URL: every attempt's status (None = transport error)."""

    event_id: str
    queued: float  # time.monotonic() when LiveKit queued it
    started: float | None = None  # monotonic time of the first attempt
    statuses: list[int | None] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    finished: float | None = None  # monotonic time of the 2xx, if any
    last_answered: float | None = None  # monotonic time the last attempt ended (answered or failed)
    dropped: str | None = None  # QUEUE_FULL or TOO_OLD: never sent

    @property
    def delivered(self) -> bool:
        return self.finished is not None

    @property
    def attempts(self) -> int:
        return len(self.statuses)

    @property
    def seconds_to_2xx(self) -> float | None:
        """From the first attempt to the 2xx (time in the queue before it excluded)."""
        return None if self.finished is None or self.started is None else self.finished - self.started

    @property
    def final_status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None


@dataclass
class _Queued:
    event: WebhookEvent
    delivery: Delivery
    done: asyncio.Future[Delivery]


@dataclass(slots=True, eq=False)
class WebhookSender:
    """What livekit-server runs for one webhook URL: `queue(event)` and await the Delivery."""

    http: httpx.AsyncClient
    url: str
    api_key: str
    api_secret: str = field(repr=False)
    policy: DeliveryPolicy = DeliveryPolicy()
    _queues: dict[str, deque[_Queued]] = field(default_factory=dict, init=False)
    _workers: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)

    def queue(self, event: WebhookEvent) -> asyncio.Future[Delivery]:
        """Queue `event` behind its room's earlier events. A full queue resolves at once, dropped."""
        done: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        item = _Queued(event, Delivery(event.id, time.monotonic()), done)
        key = event_key(event)
        waiting = self._queues.setdefault(key, deque())
        if len(waiting) >= self.policy.max_queue_depth:
            item.delivery.dropped = QUEUE_FULL
            done.set_result(item.delivery)
            return done
        waiting.append(item)
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(self._work(key))
        return done

    def waiting(self, event_or_room: WebhookEvent | str) -> int:
        """Events waiting in a room's queue (not counting the one being sent)."""
        key = event_or_room if isinstance(event_or_room, str) else event_key(event_or_room)
        return len(self._queues.get(key, ()))

    async def aclose(self) -> None:
        await cancel_and_wait(*self._workers.values())

    async def _work(self, key: str) -> None:
        waiting = self._queues[key]
        try:
            while waiting:
                item = waiting.popleft()
                try:
                    await self._process(item)
                finally:
                    if not item.done.done():
                        item.done.set_result(item.delivery)
        finally:
            del self._workers[key]
            if not waiting:
                self._queues.pop(key, None)

    async def _process(self, item: _Queued) -> None:
        delivery, policy = item.delivery, self.policy
        if time.monotonic() - delivery.queued > policy.max_age_seconds * policy.time_scale:
            delivery.dropped = TOO_OLD
            return
        body, headers = livekit_webhooks.signed_request(item.event, self.api_key, self.api_secret)
        for attempt in range(policy.max_attempts):
            if delivery.started is None:
                delivery.started = time.monotonic()
            response: httpx.Response | None = None
            try:
                response = await self.http.post(self.url, content=body, headers=headers, timeout=policy.client_timeout)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                delivery.last_answered = time.monotonic()
                delivery.statuses.append(None)
                delivery.answers.append({"transport_error": f"{type(exc).__name__}: {exc}"})
                return  # not retried: no request could be made
            except httpx.HTTPError as exc:
                delivery.last_answered = time.monotonic()
                delivery.statuses.append(None)
                delivery.answers.append({"transport_error": f"{type(exc).__name__}: {exc}"})
            else:
                delivery.last_answered = time.monotonic()
                delivery.statuses.append(response.status_code)
                delivery.answers.append(_answer(response))
                if 200 <= response.status_code < 300:
                    delivery.finished = time.monotonic()
                    return
            if not is_retried(delivery.final_status) or attempt == policy.max_attempts - 1:
                return
            await asyncio.sleep(policy.backoff(attempt, response))


class WebhookNotifier:
    """Several webhook URLs (livekit's DefaultNotifier): each gets every event, in URL order."""

    def __init__(self, senders: Sequence[WebhookSender]) -> None:
        self.senders = list(senders)

    def notify(self, event: WebhookEvent) -> list[asyncio.Future[Delivery]]:
        """One Delivery per URL reached; a full queue at one URL keeps the event from the URLs after it."""
        futures = []
        for sender in self.senders:
            future = sender.queue(event)
            futures.append(future)
            if future.done() and future.result().dropped == QUEUE_FULL:
                break
        return futures

    async def aclose(self) -> None:
        for sender in self.senders:
            await sender.aclose()


def event_key(event: WebhookEvent) -> str:
    """livekit's EventKey, for the events that have a room or a participant."""
    if event.HasField("egress_info"):
        return event.egress_info.egress_id
    if event.HasField("ingress_info"):
        return event.ingress_info.ingress_id
    if event.HasField("room"):
        return event.room.name
    if event.HasField("participant"):
        return event.participant.identity
    if event.HasField("track"):
        return event.track.sid
    return "default"


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {"raw": response.text[:200]}
    return answer if isinstance(answer, dict) else {"raw": answer}
