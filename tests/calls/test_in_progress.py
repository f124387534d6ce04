"""friday_calls_in_progress on a real database (SQLite and PostgreSQL): the count's row
(calls_open_count) moves with every start and end whatever the events' order and
duplicates, with replicas recording at once, through retention and across a restart;
recording an event never counts the calls rows (that count grew with the calls open);
the sweep's recount puts right a count left wrong by a writer past the store.

The sweep (and a start) recount, so the count's row is checked where no sweep ran since."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from friday.calls.v1.call_pb2 import CallEvent
from services.calls.config import CallsConfig, StoreConfig
from services.calls.history import DAY_MS, CallHistory
from services.calls.metrics import CallsMetrics
from services.calls.records import fold
from services.calls.schema import calls
from services.calls.store import SqlCallStore
from tests.calls import events as ev
from tests.calls.conftest import Clock

pytestmark = pytest.mark.asyncio


class Service:
    """One CallHistory replica on the test's database, with its own metrics."""

    def __init__(self, store_config: StoreConfig, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.store = SqlCallStore(store_config, clock_ms=clock)
        config = CallsConfig(
            store=store_config, no_agent_seconds=20.0, retention_days=30.0, sweep_interval_seconds=3600
        )
        self.history = CallHistory(self.store, config, CallsMetrics(self.registry), clock_ms=clock)

    def gauge(self) -> float | None:
        return self.registry.get_sample_value("friday_calls_in_progress")

    async def open_rows(self) -> int:
        """The truth the gauge must match: the calls rows started and not ended."""
        query = select(func.count()).where(calls.c.started_at_ms.is_not(None), calls.c.ended_at_ms.is_(None))
        return int(await self.store.run_in_transaction(lambda c: c.execute(query).scalar_one()))


@pytest.fixture
async def service(store_config: StoreConfig, clock: Clock) -> AsyncIterator[Service]:
    started = Service(store_config, clock)
    await started.history.start()
    try:
        yield started
    finally:
        await started.history.stop()


async def _write_past_the_store(store: SqlCallStore, clock: Clock, room: str) -> None:
    """A call started as an older replica would write it: its row, and no move of the count."""
    from services.calls.store import _row_values

    call = fold([ev.sip_joined(room)], no_agent_seconds=20.0, now_ms=clock())
    await store.run_in_transaction(lambda c: c.execute(calls.insert(), [{"room": room, **_row_values(call, clock())}]))


def _mixed_calls(calls_each: int) -> tuple[list[CallEvent], int]:
    """Events of calls in every state, and how many of those calls are in progress at the end."""
    events: list[CallEvent] = []
    for n in range(calls_each):
        events += ev.whole_call(f"call-done{n}")  # answered and ended
        events += [ev.sip_joined(f"call-ring{n}"), ev.dispatched(f"call-ring{n}")]  # still ringing
        events += [ev.sip_joined(f"call-talk{n}"), ev.agent_joined(f"call-talk{n}")]  # answered, talking
        events += [ev.sip_joined(f"call-gone{n}"), ev.sip_left(f"call-gone{n}", ev.T0 + 4000)]  # abandoned
        events += [ev.agent_joined(f"room-nocall{n}")]  # no SIP join: never a call
    return events, 2 * calls_each


async def test_the_gauge_follows_starts_and_ends_in_any_order_with_duplicates(service: Service) -> None:
    events, in_progress = _mixed_calls(4)
    rng = random.Random(20251202)
    events += rng.sample(events, 12)  # redeliveries
    rng.shuffle(events)  # an end may come before its start, an agent before the caller
    for event in events:
        await service.history.record(event)
        assert service.gauge() == await service.open_rows()
    assert service.gauge() == in_progress
    assert await service.store.count_in_progress() == in_progress


async def test_the_count_survives_a_restart(store_config: StoreConfig, clock: Clock) -> None:
    first = Service(store_config, clock)
    await first.history.start()
    try:
        for room in ("call-a", "call-b", "call-c"):
            await first.history.record(ev.sip_joined(room))
        await first.history.record(ev.sip_left("call-a"))
        assert first.gauge() == 2
    finally:
        await first.history.stop()
    bare = SqlCallStore(store_config, clock_ms=clock)
    await bare.open()
    try:
        assert await bare.count_in_progress() == 2  # the row itself, before any recount
    finally:
        await bare.close()
    second = Service(store_config, clock)
    await second.history.start()  # a new process: nothing but the database remembers
    try:
        assert second.gauge() == 2
        await second.history.record(ev.sip_left("call-b"))
        await second.history.record(ev.sip_left("call-b"))  # redelivered: ends nothing more
        assert second.gauge() == 1 == await second.open_rows()
    finally:
        await second.history.stop()


async def test_retention_counts_out_the_old_calls_still_open(service: Service, clock: Clock) -> None:
    h = service.history
    await h.record(ev.sip_joined("call-stuck"))  # its end never reported
    for e in ev.whole_call("call-old"):
        await h.record(e)
    clock.now_ms = ev.T0 + 29 * DAY_MS
    await h.record(ev.sip_joined("call-recent", ev.T0 + 29 * DAY_MS))
    assert service.gauge() == 2
    clock.now_ms = ev.T0 + 31 * DAY_MS
    assert await service.store.delete_older_than(ev.T0 + DAY_MS) == 2
    assert await service.store.count_in_progress() == 1 == await service.open_rows()
    await h.sweep()
    assert service.gauge() == 1
    await h.record(ev.sip_joined("call-stuck"))  # a late redelivery starts a new record
    assert service.gauge() == 2 == await service.open_rows()


async def test_an_event_known_under_another_room_moves_the_count_once(service: Service) -> None:
    h = service.history
    await h.record(ev.sip_joined("call-first", event_id="EV_shared"))
    await h.record(ev.sip_joined("call-second", event_id="EV_shared"))  # folds call-first again
    assert service.gauge() == 1 == await service.open_rows()


async def test_replicas_sharing_postgresql_count_every_start_and_end(store_config: StoreConfig, clock: Clock) -> None:
    """Replicas recording different rooms are not serialised by the room lock: the count's
    row must be moved atomically (n = n + delta), or concurrent starts lose each other."""
    if not store_config.database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL; an SQLite file belongs to one process")
    replicas = [Service(store_config, clock) for _ in range(3)]
    for replica in replicas:
        await replica.history.start()
    try:
        rooms = [f"call-r{n}" for n in range(60)]
        await _write_past_the_store(replicas[0].store, clock, "call-by-old")  # the recounts have work to do

        def on(n: int) -> CallHistory:
            return replicas[n % len(replicas)].history

        # Recounts in between: each must see every change either committed or not yet moved.
        recounts = [r.store.recount_in_progress() for r in replicas]
        await asyncio.gather(*(on(n).record(ev.sip_joined(room)) for n, room in enumerate(rooms)), *recounts)
        # Half of them end, each end reported by two replicas at once (several gateways).
        ends = [ev.sip_left(room) for room in rooms[::2]]
        recounts = [r.store.recount_in_progress() for r in replicas]
        await asyncio.gather(*(on(n + k).record(e) for n, e in enumerate(ends) for k in (0, 1)), *recounts)
        truth = await replicas[0].open_rows()
        assert truth == 31
        assert [await r.store.count_in_progress() for r in replicas] == [truth] * len(replicas)
    finally:
        for replica in replicas:
            await replica.history.stop()


async def test_the_sweep_puts_right_a_count_a_writer_past_the_store_left_wrong(
    service: Service, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """An older replica, still running during the rollout that brings the count's row, writes
    calls rows without moving it; so would a hand edit."""
    await service.history.record(ev.sip_joined("call-new"))
    await _write_past_the_store(service.store, clock, "call-by-old")
    assert await service.store.count_in_progress() == 1 != await service.open_rows()
    await service.history.sweep()
    assert service.gauge() == 2 == await service.store.count_in_progress()
    assert "the count's row said 1, the calls rows say 2" in caplog.text
    await service.history.record(ev.sip_left("call-by-old"))  # its end, on a new replica
    assert service.gauge() == 1 == await service.open_rows()
    caplog.clear()
    await service.history.sweep()
    assert "count's row" not in caplog.text  # nothing to put right


async def test_recording_never_counts_the_calls_rows(service: Service, clock: Clock) -> None:
    """The count of open calls cost O(calls open) on every start and end; now a row moves."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.lower())

    await service.history.record(ev.sip_joined("call-warm"))  # the pool's connection exists
    event.listen(service.store.sync_engine, "before_cursor_execute", seen)
    try:
        for e in ev.whole_call("call-counted"):
            await service.history.record(e)
    finally:
        event.remove(service.store.sync_engine, "before_cursor_execute", seen)
    assert statements, "no statements seen"
    assert not [s for s in statements if "count(" in s], statements
    assert service.gauge() == 1  # call-warm


async def test_the_mixed_calls_are_what_they_say() -> None:
    """The helper's arithmetic, checked by the fold itself."""
    events, in_progress = _mixed_calls(3)
    rooms = sorted({e.room for e in events})
    open_calls = 0
    for room in rooms:
        call = fold([e for e in events if e.room == room], no_agent_seconds=20.0, now_ms=ev.T0)
        open_calls += call.HasField("started_at") and not call.HasField("ended_at")
    assert open_calls == in_progress
