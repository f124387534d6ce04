"""Signed call events from the transactional outbox, on both databases: a receiver that
was down (refusing, then not even listening) across a restart of the service still gets
call.started, call.answered and call.ended — each once by idempotency key, each signed."""

from __future__ import annotations

import asyncio
import time

from services.calls.client import CallsClient
from services.calls.config import CallsConfig, StoreConfig
from services.calls.outbox import CallEventsConfig, signature, verify_signature
from services.calls.server import build_server
from services.grpc_runtime import ServerConfig
from services.testing.call_events_receiver import CallEventsReceiver
from tests.calls import events as ev

SECRET = "call-events-secret-0123456789abcdef"
WAIT_SECONDS = 60.0  # a cap for a stuck test; every wait ends as soon as its condition holds


async def _until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def _server(store_config: StoreConfig, url: str):
    events = CallEventsConfig(
        url=url,
        secret=SECRET,
        poll_interval_seconds=0.02,
        initial_backoff_seconds=0.02,
        max_backoff_seconds=0.1,
        lease_seconds=0.5,  # a delivery cut by the restart is offered again soon, not after 30 s
    )
    config = CallsConfig(store=store_config, events=events, sweep_interval_seconds=3600)
    return build_server(config, ServerConfig(host="127.0.0.1", port=0))


async def test_every_event_reaches_a_receiver_that_was_down_across_a_restart(store_config: StoreConfig) -> None:
    receiver = CallEventsReceiver(SECRET, accepting=False)
    await receiver.start()
    port = receiver.port
    first = _server(store_config, receiver.url)
    await first.start()
    try:
        now_ms = time.time_ns() // 1_000_000
        async with CallsClient(first.address) as client:
            for event in ev.whole_call("call-out"):
                shift = now_ms - ev.T0
                event.occurred_at.FromMilliseconds(event.occurred_at.ToMilliseconds() + shift)
                await client.record(event)
                await client.record(event)  # a redelivery makes no second call event
        await _until(lambda: receiver.refused_while_down >= 3, "the deliverer tried while the receiver refused")
    finally:
        await first.stop(grace=0)
    await receiver.stop()  # now nothing even listens
    second = _server(store_config, receiver.url)
    await second.start()
    try:
        await asyncio.sleep(0.2)  # a few delivery passes against a closed port
        receiver.accepting = True
        await receiver.start(port)
        await _until(lambda: len(receiver.unique) == 3, "all three call events delivered")
    finally:
        await second.stop(grace=0)
        await receiver.stop()
    assert {d.event_type for d in receiver.unique.values()} == {"call.started", "call.answered", "call.ended"}
    assert set(receiver.unique) == {"call-out:call.started", "call-out:call.answered", "call-out:call.ended"}
    assert all(d.signature_ok for d in receiver.deliveries)
    ended = receiver.unique["call-out:call.ended"].body["call"]
    assert ended["outcome"] == "CALL_OUTCOME_ANSWERED" and ended["duration_seconds"] == 62.0
    # At least once on the wire (a lease may expire mid-POST); the key is what a receiver dedupes by.
    assert len(receiver.deliveries) == 3 + receiver.duplicates


def test_a_signature_binds_the_body_and_the_time() -> None:
    body = b'{"type": "call.started"}'
    now = int(time.time())
    header = signature(SECRET, now, body)
    assert verify_signature(SECRET, header, body, now=now)
    assert not verify_signature(SECRET, header, body + b" ", now=now)
    assert not verify_signature("another-secret-0123456789abcdefgh", header, body, now=now)
    assert not verify_signature(SECRET, header, body, now=now + 301)  # a replay, minutes later
    assert not verify_signature(SECRET, "garbage", body, now=now)
