"""CallHistory on a real database (SQLite and PostgreSQL): a call's events in every
order and duplicated give one identical record; outcomes, masking, the sweep, retention,
queries and stats."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event as sqlalchemy_event

from friday.calls.v1.call_pb2 import Call, CallOutcome
from services.calls import errors
from services.calls.config import CallerNumbers, CallsConfig, StoreConfig
from services.calls.history import DAY_MS, CallHistory
from services.calls.metrics import CallsMetrics
from services.calls.records import fold, millis
from services.calls.store import CallQuery, SqlCallStore
from tests.calls import events as ev
from tests.calls.conftest import Clock

pytestmark = pytest.mark.asyncio


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Harness:
    def __init__(
        self, history: CallHistory, store: SqlCallStore, registry: CollectorRegistry, clock: Clock, config: CallsConfig
    ) -> None:
        self.history = history
        self.store = store
        self.registry = registry
        self.clock = clock
        self.settle_seconds = config.settle_seconds


@pytest.fixture
async def harness(store_config: StoreConfig, clock: Clock) -> AsyncIterator[Harness]:
    registry = CollectorRegistry()
    config = CallsConfig(store=store_config, no_agent_seconds=20.0, retention_days=30.0, sweep_interval_seconds=3600)
    store = SqlCallStore(store_config, clock_ms=clock)
    history = CallHistory(store, config, CallsMetrics(registry), clock_ms=clock)
    await history.start()
    try:
        yield Harness(history, store, registry, clock, config)
    finally:
        await history.stop()


def _without_room(call: Call) -> Call:
    copy = Call()
    copy.CopyFrom(call)
    copy.room = ""
    copy.sip_call_id = ""
    copy.dispatch.dispatch_id = ""
    copy.dispatch.job_id = ""
    copy.agent_identity = ""
    return copy


async def test_every_order_with_duplicates_gives_one_identical_record(harness: Harness) -> None:
    base = ev.whole_call("tmpl")
    records: list[Call] = []
    for n, order in enumerate(itertools.permutations(range(len(base)))):
        room = f"call-perm{n}"
        events = ev.whole_call(room)
        sequence = [events[i] for i in order]
        # A redelivery of the first event in the middle and of the last at the end.
        sequence = sequence[:2] + [sequence[0]] + sequence[2:] + [sequence[-1]]
        outcomes = [await harness.history.record(e) for e in sequence]
        assert [o.recorded for o in outcomes].count(False) == 2
        found, stored_events = await harness.history.get_call(room)
        assert len(stored_events) == len(base)
        records.append(found)
    first = _without_room(records[0])
    assert all(_without_room(r) == first for r in records)
    call = records[0]
    assert call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED
    assert call.answer_seconds == pytest.approx(1.5)
    assert call.duration_seconds == pytest.approx(62.0)
    assert call.end_reason == "SIP_LEFT CLIENT_INITIATED"
    assert call.dispatch.persona_id == "xeny-reception"
    assert call.dispatch.persona_version == "sha256:0123456789abcdef"
    assert call.dispatch.job_id == "AJ_call-perm0"
    assert call.caller_number == "+*******0123"  # masked by default
    assert millis(call.started_at) == ev.T0
    # An end that arrives before the agent's join first reads as no_agent; a counter cannot take
    # a count back, so nothing is counted until the call is decided and settled, and then each
    # call once, under its final outcome, with its answer time.
    outcomes = ("answered", "no_agent", "abandoned")
    assert _metric(harness.registry, "friday_calls_in_progress") == 0
    await harness.history.sweep()
    assert [_metric(harness.registry, "friday_calls_total", outcome=o) for o in outcomes] == [0, 0, 0]
    harness.clock.now_ms += round(harness.settle_seconds * 1000)
    await harness.history.sweep()
    await harness.history.sweep()  # counted once, however often the sweep runs
    counted = [_metric(harness.registry, "friday_calls_total", outcome=o) for o in outcomes]
    assert counted == [len(records), 0, 0]
    assert _metric(harness.registry, "friday_call_answer_seconds_count") == len(records)
    assert _metric(harness.registry, "friday_call_answer_seconds_sum") == pytest.approx(1.5 * len(records))


async def test_concurrent_events_of_one_call_miss_nothing(harness: Harness) -> None:
    for n in range(5):
        room = f"call-race{n}"
        await asyncio.gather(*(harness.history.record(e) for e in ev.whole_call(room) * 2))
        call, stored = await harness.history.get_call(room)
        assert len(stored) == 5
        assert call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED
        assert call.HasField("ended_at")


async def test_abandoned_no_agent_and_in_progress(harness: Harness) -> None:
    h = harness.history
    # Caller leaves after 5 s, before any agent: abandoned.
    await h.record(ev.sip_joined("call-ab"))
    assert (await h.get_call("call-ab"))[0].outcome == CallOutcome.CALL_OUTCOME_UNSPECIFIED
    assert _metric(harness.registry, "friday_calls_in_progress") == 1
    await h.record(ev.sip_left("call-ab", ev.T0 + 5000))
    assert (await h.get_call("call-ab"))[0].outcome == CallOutcome.CALL_OUTCOME_ABANDONED
    # Still ringing, no agent: undecided until CALLS_NO_AGENT_SECONDS pass, then the sweep decides no_agent.
    harness.clock.now_ms = ev.T0 + 10_000
    await h.record(ev.sip_joined("call-na"))
    await h.sweep()
    assert (await h.get_call("call-na"))[0].outcome == CallOutcome.CALL_OUTCOME_UNSPECIFIED
    harness.clock.now_ms = ev.T0 + 20_000
    await h.sweep()
    assert (await h.get_call("SCL_call-na"))[0].outcome == CallOutcome.CALL_OUTCOME_NO_AGENT
    # An agent arriving after the limit does not make it answered, nor count it twice.
    await h.record(ev.agent_joined("call-na", ev.T0 + 25_000))
    call = (await h.get_call("call-na"))[0]
    assert call.outcome == CallOutcome.CALL_OUTCOME_NO_AGENT
    assert call.answer_seconds == pytest.approx(25.0)
    assert _metric(harness.registry, "friday_calls_in_progress") == 1  # call-na has not hung up
    # Not counted while the late agent join is within the settle time: it might still change.
    await h.sweep()
    assert _metric(harness.registry, "friday_calls_total", outcome="no_agent") == 0
    # Counted once each is decided and settled, hung up (call-ab) or still ringing (call-na):
    # the count lags the decision by the settle time, never by the length of the call.
    harness.clock.now_ms += round(harness.settle_seconds * 1000)
    await h.sweep()
    assert _metric(harness.registry, "friday_calls_total", outcome="abandoned") == 1
    assert _metric(harness.registry, "friday_calls_total", outcome="no_agent") == 1
    # Its hang-up changes the record, not the count.
    await h.record(ev.sip_left("call-na", ev.T0 + 40_000))
    harness.clock.now_ms += round(harness.settle_seconds * 1000)
    await h.sweep()
    assert _metric(harness.registry, "friday_calls_total", outcome="no_agent") == 1
    assert _metric(harness.registry, "friday_calls_total", outcome="abandoned") == 1
    assert _metric(harness.registry, "friday_call_answer_seconds_count") == 0  # no call counted answered


async def test_the_calls_in_progress_are_counted_when_a_call_starts_or_ends_only(harness: Harness) -> None:
    assert (await harness.history.record(ev.sip_joined("call-ip"))).in_progress == 1
    assert (await harness.history.record(ev.dispatched("call-ip"))).in_progress is None  # neither starts nor ends
    assert (await harness.history.record(ev.sip_left("call-ip"))).in_progress == 0
    assert _metric(harness.registry, "friday_calls_in_progress") == 0


async def test_an_event_id_stored_under_another_room_folds_that_room(harness: Harness) -> None:
    await harness.history.record(ev.sip_joined("call-first", event_id="EV_shared"))
    again = await harness.history.record(ev.sip_joined("call-second", event_id="EV_shared"))
    assert not again.recorded
    assert again.after.room == "call-first"
    assert [c.room for c in await harness.history.list_calls(CallQuery())] == ["call-first"]


async def test_a_batch_records_each_calls_events_in_one_transaction(harness: Harness) -> None:
    transactions: list[object] = []

    def began(connection: object) -> None:
        transactions.append(connection)

    sqlalchemy_event.listen(harness.store.sync_engine, "begin", began)
    invalid = ev.sip_joined("call-bad")
    invalid.ClearField("occurred_at")
    a_join, b_join = ev.sip_joined("call-a"), ev.sip_joined("call-b")
    batch = [a_join, b_join, ev.dispatched("call-a"), invalid, a_join, ev.dispatched("call-b")]
    try:
        outcomes = await harness.history.record_many(batch)
    finally:
        sqlalchemy_event.remove(harness.store.sync_engine, "begin", began)
    assert len(transactions) == 2  # call-a's three events, then call-b's two; the invalid one never reaches the store
    assert isinstance(outcomes[3], errors.InvalidEvent)
    assert [o.recorded for o in outcomes if not isinstance(o, errors.InvalidEvent)] == [True, True, True, False, True]
    # The same records as the events recorded one by one.
    for room in ("call-a", "call-b"):
        for event in (ev.sip_joined(f"{room}-alone"), ev.dispatched(f"{room}-alone")):
            await harness.history.record(event)
        batched, alone = (await harness.history.get_call(room))[0], (await harness.history.get_call(f"{room}-alone"))[0]
        assert batched.dispatch.persona_id and _without_room(batched) == _without_room(alone)
    assert _metric(harness.registry, "friday_calls_in_progress") == 4


async def test_after_a_batch_the_gauge_holds_the_count_its_last_transaction_read(harness: Harness) -> None:
    # call-a's two events go in the first transaction, call-b's in the second: the gauge must
    # end at the second's count, not at the first's because call-a's last event comes last.
    await harness.history.record_many([ev.sip_joined("call-a"), ev.sip_joined("call-b"), ev.sip_left("call-a")])
    assert _metric(harness.registry, "friday_calls_in_progress") == 1


async def test_a_batch_event_stored_under_another_room_folds_that_room_and_its_own_the_rest(harness: Harness) -> None:
    await harness.history.record(ev.sip_joined("call-first", event_id="EV_shared"))
    shared, own = await harness.history.record_many(
        [ev.sip_joined("call-second", event_id="EV_shared"), ev.dispatched("call-second")]
    )
    assert not isinstance(shared, errors.InvalidEvent) and not isinstance(own, errors.InvalidEvent)
    assert (shared.recorded, shared.after.room) == (False, "call-first")
    assert (own.recorded, own.after.room) == (True, "call-second")
    _, stored = await harness.history.get_call("call-first")
    assert [e.event_id for e in stored] == ["EV_shared"]


async def test_the_sweep_decides_overdue_calls_a_hundred_to_a_transaction(
    harness: Harness, store_config: StoreConfig, clock: Clock
) -> None:
    rooms = [f"call-due{n}" for n in range(250)]
    await harness.history.record_many([ev.sip_joined(room) for room in rooms])
    harness.clock.now_ms = ev.T0 + 20_000
    transactions: list[object] = []

    def began(connection: object) -> None:
        transactions.append(connection)

    sqlalchemy_event.listen(harness.store.sync_engine, "begin", began)
    # A second replica's sweep over the same rooms, the other way round, at the same time:
    # both take the rooms' locks in one order, so neither waits on the other for ever.
    other = SqlCallStore(store_config, clock_ms=clock)
    try:
        fold_now = lambda events: fold(events, no_agent_seconds=20, now_ms=clock())  # noqa: E731
        ours, theirs = await asyncio.gather(harness.store.refold(rooms, fold_now), other.refold(rooms[::-1], fold_now))
    finally:
        sqlalchemy_event.remove(harness.store.sync_engine, "begin", began)
        await other.close()
    assert len(transactions) == 3
    assert [r.after.room for r in ours] == rooms and [r.after.room for r in theirs] == rooms[::-1]
    assert {r.after.outcome for r in ours + theirs} == {CallOutcome.CALL_OUTCOME_NO_AGENT}
    assert _metric(harness.registry, "friday_calls_in_progress") == 250


async def test_a_call_is_counted_once_even_when_an_event_later_than_the_settle_time_changes_it(
    harness: Harness,
) -> None:
    h = harness.history
    for event in (ev.sip_joined("call-settled"), ev.sip_left("call-settled")):
        await h.record(event)
    harness.clock.now_ms += round(harness.settle_seconds * 1000)
    await h.sweep()
    assert _metric(harness.registry, "friday_calls_total", outcome="no_agent") == 1
    # The agent's join, later than anything LiveKit or the gateway retries: the record is put
    # right, the counter (which cannot take a count back) is not changed.
    await h.record(ev.agent_joined("call-settled"))
    assert (await h.get_call("call-settled"))[0].outcome == CallOutcome.CALL_OUTCOME_ANSWERED
    harness.clock.now_ms += round(harness.settle_seconds * 1000)
    await h.sweep()
    assert _metric(harness.registry, "friday_calls_total", outcome="no_agent") == 1
    assert _metric(harness.registry, "friday_calls_total", outcome="answered") == 0


async def test_events_without_a_sip_join_are_kept_but_no_call_is_listed(harness: Harness) -> None:
    await harness.history.record(ev.agent_joined("call-late"))
    assert await harness.history.list_calls(CallQuery()) == []
    with pytest.raises(errors.CallNotFound):
        await harness.history.get_call("call-late")
    await harness.history.record(ev.sip_joined("call-late"))
    call, _ = await harness.history.get_call("call-late")
    assert call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED


async def test_invalid_events_are_refused(harness: Harness) -> None:
    bad = ev.sip_joined("call-x")
    bad.ClearField("occurred_at")
    with pytest.raises(errors.InvalidEvent):
        await harness.history.record(bad)
    nameless = ev.sip_joined("call-x")
    nameless.room = ""
    with pytest.raises(errors.InvalidEvent):
        await harness.history.record(nameless)


async def test_list_filters_and_pages(harness: Harness) -> None:
    h = harness.history
    for n in range(7):
        room = f"call-list{n}"
        await h.record(ev.sip_joined(room, ev.T0 + n * 1000))
        await h.record(ev.dispatched(room, ev.T0 + n * 1000 + 100))
        if n % 2 == 0:
            await h.record(ev.agent_joined(room, ev.T0 + n * 1000 + 900))
    seen: list[str] = []
    after = None
    while True:
        page = await h.list_calls(CallQuery(limit=3, after=after))
        seen += [c.room for c in page]
        if len(page) < 3:
            break
        after = (millis(page[-1].started_at), page[-1].room)
    assert seen == [f"call-list{n}" for n in reversed(range(7))]
    answered = await h.list_calls(CallQuery(outcome="answered"))
    assert [c.room for c in answered] == ["call-list6", "call-list4", "call-list2", "call-list0"]
    ranged = await h.list_calls(CallQuery(start_ms=ev.T0 + 2000, end_ms=ev.T0 + 4000))
    assert [c.room for c in ranged] == ["call-list3", "call-list2"]
    assert len(await h.list_calls(CallQuery(dialed_number="+918655701159", persona_id="xeny-reception"))) == 7
    assert await h.list_calls(CallQuery(persona_id="someone-else")) == []


async def test_stats_per_bucket_and_persona(harness: Harness) -> None:
    h = harness.history
    answers = [1.0, 2.0, 3.0, 4.0]
    for n, answer in enumerate(answers):
        room = f"call-stat{n}"
        start = ev.T0 + n * 3_600_000
        await h.record(ev.sip_joined(room, start))
        source = "PERSONA_SOURCE_DEFAULT" if n == 0 else "PERSONA_SOURCE_CRM"
        await h.record(ev.dispatched(room, start + 100, source=source))
        await h.record(ev.agent_joined(room, start + round(answer * 1000)))
        await h.record(ev.sip_left(room, start + 30_000 + n * 1000))
    await h.record(ev.sip_joined("call-stat-ab", ev.T0 + 10))
    await h.record(ev.sip_left("call-stat-ab", ev.T0 + 2010))
    stats = await h.stats(ev.T0 - ev.T0 % 3_600_000, ev.T0 + 4 * 3_600_000, 3600)
    assert stats.total.calls == 5
    assert stats.total.answered == 4
    assert stats.total.abandoned == 1
    assert stats.total.default_share == pytest.approx(0.25)
    assert stats.total.median_answer_seconds == pytest.approx(2.0)
    assert stats.total.p95_answer_seconds == pytest.approx(4.0)
    assert stats.total.median_duration_seconds == pytest.approx(31.0)  # 2, 30, 31, 32, 33
    assert [b.stats.calls for b in stats.buckets] == [2, 1, 1, 1]
    assert stats.personas[0].persona_id == "xeny-reception"
    assert stats.personas[0].stats.calls == 4
    assert stats.personas[1].persona_id == ""  # the abandoned call never got a dispatch


async def test_retention_deletes_old_calls_and_their_events(harness: Harness) -> None:
    h = harness.history
    for e in ev.whole_call("call-old"):
        await h.record(e)
    harness.clock.now_ms = ev.T0 + 29 * DAY_MS
    for e in ev.whole_call("call-new"):
        e.occurred_at.seconds += 29 * 86_400
        await h.record(e)
    harness.clock.now_ms = ev.T0 + 31 * DAY_MS
    await h.sweep()
    with pytest.raises(errors.CallNotFound):
        await h.get_call("call-old")
    assert len((await h.get_call("call-new"))[1]) == 5


async def test_full_caller_numbers_when_configured(store_config: StoreConfig, clock: Clock) -> None:
    config = CallsConfig(store=store_config, caller_numbers=CallerNumbers.FULL)
    history = CallHistory(SqlCallStore(store_config, clock_ms=clock), config, CallsMetrics(), clock_ms=clock)
    await history.start()
    try:
        await history.record(ev.sip_joined("call-full"))
        call, events = await history.get_call("call-full")
        assert call.caller_number == "+14155550123"
        assert events[0].sip.participant_identity == "sip_+14155550123"
    finally:
        await history.stop()


async def test_masked_numbers_are_masked_in_stored_events_too(harness: Harness) -> None:
    await harness.history.record(ev.sip_joined("call-mask"))
    _, events = await harness.history.get_call("call-mask")
    assert events[0].sip.caller_number == "+*******0123"
    assert "4155550123" not in events[0].sip.participant_identity
