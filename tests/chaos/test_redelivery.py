"""The webhook delivery model against a scripted receiver on a real socket: LiveKit's retry
policy and backoff (scaled down), the same bytes on every attempt, one FIFO queue per room,
the queue depth, the age limit, no client timeout, and several URLs."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from services.chaos.redelivery import (
    BACKOFF_SECONDS,
    MAX_ATTEMPTS,
    QUEUE_FULL,
    TOO_OLD,
    DeliveryPolicy,
    WebhookNotifier,
    WebhookSender,
    is_retried,
    retry_after_seconds,
)
from services.testing.livekit_webhooks import room_started, sip_participant_joined

KEY = "APIredeliverykey"
SECRET = "redelivery-secret-0123456789-0123456789"
FAST = DeliveryPolicy(time_scale=0.01)  # 10, 20, 40, 80 ms between attempts; 0.3 s age limit


@dataclass
class Receiver:
    """Answers with the next scripted (status, headers, seconds) and records what arrived."""

    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    default: tuple[int, dict[str, str], float] = (200, {}, 0.0)
    seen: list[tuple[float, bytes, dict[str, str]]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((time.monotonic(), await request.read(), dict(request.headers)))
        self.arrived.set()
        status, headers, seconds = self.script.pop(0) if self.script else self.default
        if self.gate is not None:
            await self.gate.wait()
        if seconds:
            await asyncio.sleep(seconds)
        return web.json_response({"status": "ok"}, status=status, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recv.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield recv
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.05) as client:  # the model must not use this timeout
        yield client


def _join(room: str = "call-1"):  # type: ignore[no-untyped-def]
    return sip_participant_joined(room=room, dialed_number="+14155550100")


def test_the_schedule_is_go_retryablehttps_defaults() -> None:
    assert MAX_ATTEMPTS == 5
    assert BACKOFF_SECONDS == (1.0, 2.0, 4.0, 8.0)
    assert DeliveryPolicy().backoff(5, None) == 30.0  # capped at RetryWaitMax
    assert FAST.backoff(2, None) == pytest.approx(0.04)
    assert (DeliveryPolicy().max_queue_depth, DeliveryPolicy().max_age_seconds) == (200, 30.0)
    assert DeliveryPolicy().client_timeout is None


@pytest.mark.parametrize(
    ("status", "retried"),
    [(None, True), (429, True), (500, True), (502, True), (503, True), (504, True), (999, True), (0, True)]
    + [(501, False), (200, False), (204, False), (301, False), (400, False), (401, False), (422, False)],
)
def test_which_answers_are_retried(status: int | None, retried: bool) -> None:
    assert is_retried(status) is retried


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("-1") is None and retry_after_seconds("soon") is None
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 58 <= (retry_after_seconds(in_a_minute) or 0) <= 60
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    honoured = httpx.Response(503, headers={"Retry-After": "40"})
    ignored = httpx.Response(500, headers={"Retry-After": "40"})
    assert DeliveryPolicy().backoff(0, honoured) == 40.0  # uncapped, and only on 429/503
    assert DeliveryPolicy().backoff(0, ignored) == 1.0


async def test_a_5xx_is_retried_five_times_with_the_same_bytes_and_backoff(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    receiver.default = (503, {}, 0.0)
    sender = WebhookSender(http, receiver.url, KEY, SECRET, FAST)
    event = _join()
    delivery = await sender.queue(event)
    assert delivery.statuses == [503] * 5 and not delivery.delivered
    assert len({body for _, body, _ in receiver.seen}) == 1  # same bytes: the same event id
    assert len({headers["Authorization"] for _, _, headers in receiver.seen}) == 1
    assert event.id.encode() in receiver.seen[0][1]
    gaps = [b[0] - a[0] for a, b in zip(receiver.seen, receiver.seen[1:], strict=False)]
    assert all(gap >= wait * 0.01 for gap, wait in zip(gaps, BACKOFF_SECONDS, strict=True))
    # The last attempt's answer came after the last attempt was sent.
    assert delivery.last_answered is not None and delivery.last_answered >= receiver.seen[-1][0]


async def test_retry_after_on_a_429_sets_the_wait(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.script = [(429, {"Retry-After": "20"}, 0.0)]  # 20 s, scaled: 0.2 s instead of 10 ms
    delivery = await WebhookSender(http, receiver.url, KEY, SECRET, FAST).queue(_join())
    assert delivery.statuses == [429, 200] and delivery.delivered
    assert receiver.seen[1][0] - receiver.seen[0][0] >= 0.2


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
async def test_a_4xx_or_501_is_never_retried(receiver: Receiver, http: httpx.AsyncClient, status: int) -> None:
    receiver.default = (status, {}, 0.0)
    delivery = await WebhookSender(http, receiver.url, KEY, SECRET, FAST).queue(_join())
    assert delivery.statuses == [status] and len(receiver.seen) == 1


async def test_a_receiver_that_is_down_is_retried_as_a_transport_error(http: httpx.AsyncClient) -> None:
    closed = "http://127.0.0.1:9/hook"  # discard port: nothing listens
    delivery = await WebhookSender(http, closed, KEY, SECRET, FAST).queue(_join())
    assert delivery.statuses == [None] * 5
    assert "transport_error" in delivery.answers[0]


async def test_there_is_no_client_timeout(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.script = [(200, {}, 0.3)]  # longer than the client's own 0.05 s default
    delivery = await WebhookSender(http, receiver.url, KEY, SECRET, FAST).queue(_join())
    assert delivery.statuses == [200]


async def test_a_slow_answer_delays_that_rooms_later_events_only(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.script = [(200, {}, 0.4)]  # the first event of call-a is answered slowly
    patient = DeliveryPolicy(time_scale=0.01, max_age_seconds=1000)  # no event gets too old here
    sender = WebhookSender(http, receiver.url, KEY, SECRET, patient)
    first_a = sender.queue(room_started(room="call-a"))
    second_a = sender.queue(_join("call-a"))
    other = sender.queue(_join("call-b"))
    began = time.monotonic()
    b = await other
    assert b.delivered and b.finished is not None and b.finished - began < 0.3
    a1, a2 = await first_a, await second_a
    assert a2.started is not None and a1.finished is not None and a2.started >= a1.finished  # FIFO per room
    assert a2.started - a2.queued >= 0.35


async def test_a_room_queue_holds_200_waiting_events_and_drops_the_next(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    receiver.gate = asyncio.Event()
    sender = WebhookSender(http, receiver.url, KEY, SECRET, FAST)
    in_flight = sender.queue(_join())
    await receiver.arrived.wait()  # the first one is being sent: it no longer counts against the depth
    waiting = [sender.queue(_join()) for _ in range(200)]
    assert sender.waiting("call-1") == 200
    overflow = await sender.queue(_join())
    assert overflow.dropped == QUEUE_FULL and overflow.statuses == []
    other_room = sender.queue(_join("call-2"))
    receiver.gate.set()
    assert (await in_flight).delivered and (await other_room).delivered
    await asyncio.gather(*waiting)


async def test_an_event_that_waited_longer_than_30_s_is_dropped_unsent(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    receiver.script = [(200, {}, 0.5)]  # holds the queue past the scaled 0.3 s age limit
    sender = WebhookSender(http, receiver.url, KEY, SECRET, FAST)
    first, late = sender.queue(_join()), sender.queue(_join())
    assert (await first).delivered
    stale = await late
    assert stale.dropped == TOO_OLD and stale.statuses == []
    assert len(receiver.seen) == 1


async def test_several_urls_each_get_the_event_unless_an_earlier_queue_is_full(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    tight = DeliveryPolicy(time_scale=0.01, max_queue_depth=0)
    both = WebhookNotifier([WebhookSender(http, receiver.url, KEY, SECRET, FAST) for _ in range(2)])
    deliveries = await asyncio.gather(*both.notify(_join()))
    assert [d.statuses for d in deliveries] == [[200], [200]]
    assert receiver.seen[0][1] == receiver.seen[1][1]  # the same body at both URLs

    blocked = WebhookNotifier([WebhookSender(http, receiver.url, KEY, SECRET, tight), both.senders[0]])
    (only,) = blocked.notify(_join())
    assert (await only).dropped == QUEUE_FULL
