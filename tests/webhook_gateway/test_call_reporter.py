"""CallReporter's retries against a sink that fails on cue: the first attempt, made before
any retry set-up, counts as one of `max_attempts`, and what follows a failure is tenacity's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from friday.calls.v1.call_pb2 import CallEvent
from services.webhook_gateway.call_reporter import (
    MAX_BATCH,
    CallReporter,
    CallReporterMetrics,
    CallReportingConfig,
    Refusal,
    SinkRejected,
    SinkUnavailable,
)

pytestmark = pytest.mark.asyncio


class ScriptedSink:
    """Raises the scripted failures in turn, then acknowledges (refusing the ids in `refuse`)."""

    def __init__(self, *failures: Exception, refuse: frozenset[str] = frozenset()) -> None:
        self._failures = list(failures)
        self._refuse = refuse
        self.attempts = 0
        self.batches: list[list[str]] = []
        self.recorded = asyncio.Event()

    async def record(self, events: Sequence[CallEvent], *, timeout: float) -> list[Refusal]:
        self.attempts += 1
        self.batches.append([event.event_id for event in events])
        self.recorded.set()
        if self._failures:
            raise self._failures.pop(0)
        return [Refusal(event.event_id, "invalid") for event in events if event.event_id in self._refuse]


def _counts(registry: CollectorRegistry) -> dict[str, float]:
    counts = {"sent": registry.get_sample_value("friday_call_events_sent_total") or 0.0}
    for reason in ("gave_up", "rejected"):
        counts[reason] = registry.get_sample_value("friday_call_events_dropped_total", {"reason": reason}) or 0.0
    return counts


async def _send(sink: ScriptedSink, max_attempts: int) -> dict[str, float]:
    registry = CollectorRegistry()
    config = CallReportingConfig(
        target="test", max_attempts=max_attempts, initial_backoff_seconds=0.001, max_backoff_seconds=0.002
    )
    reporter = CallReporter(sink, config, CallReporterMetrics(registry))
    await reporter.start()
    reporter.report(CallEvent(event_id="EV_1", room="room-1"))
    await reporter.close()
    return _counts(registry)


@pytest.mark.parametrize(
    ("failures", "max_attempts", "attempts", "counts"),
    [
        ((), 3, 1, {"sent": 1, "gave_up": 0, "rejected": 0}),
        ((SinkUnavailable("down"), SinkUnavailable("down")), 3, 3, {"sent": 1, "gave_up": 0, "rejected": 0}),
        ((SinkUnavailable("down"),) * 3, 3, 3, {"sent": 0, "gave_up": 1, "rejected": 0}),
        ((SinkUnavailable("down"),), 1, 1, {"sent": 0, "gave_up": 1, "rejected": 0}),
        ((SinkRejected("invalid"),), 3, 1, {"sent": 0, "gave_up": 0, "rejected": 1}),
        ((SinkUnavailable("down"), SinkRejected("invalid")), 3, 2, {"sent": 0, "gave_up": 0, "rejected": 1}),
    ],
)
async def test_attempts_and_outcome(
    failures: tuple[Exception, ...], max_attempts: int, attempts: int, counts: dict[str, float]
) -> None:
    sink = ScriptedSink(*failures)
    assert await _send(sink, max_attempts) == counts
    assert sink.attempts == attempts


async def _report_while_busy(sink: ScriptedSink, events: int, **settings: object) -> dict[str, float]:
    """`events` reported before the one sender runs: they are all waiting when it does."""
    registry = CollectorRegistry()
    config = CallReportingConfig(target="test", senders=1, **settings)  # type: ignore[arg-type]
    reporter = CallReporter(sink, config, CallReporterMetrics(registry))
    for n in range(events):
        reporter.report(CallEvent(event_id=f"EV_{n}", room=f"room-{n}"))
    await reporter.start()
    await reporter.close()
    return _counts(registry)


async def test_waiting_events_go_in_batches_of_at_most_max_batch() -> None:
    sink = ScriptedSink()
    assert await _report_while_busy(sink, 7, max_batch=3) == {"sent": 7, "gave_up": 0, "rejected": 0}
    assert sink.batches == [["EV_0", "EV_1", "EV_2"], ["EV_3", "EV_4", "EV_5"], ["EV_6"]]


async def _report_one_by_one(sink: ScriptedSink, events: int, **settings: object) -> CallReporter:
    """`events` reported 10 ms apart to a started reporter (not yet closed)."""
    config = CallReportingConfig(target="test", **settings)  # type: ignore[arg-type]
    reporter = CallReporter(sink, config, CallReporterMetrics(CollectorRegistry()))
    await reporter.start()
    for n in range(events):
        reporter.report(CallEvent(event_id=f"EV_{n}", room="room-1"))
        # A sender that does not linger is ready to run and needs no I/O: it has sent
        # the event before the loop's timer fires.
        await asyncio.sleep(0.01)
    return reporter


async def test_without_a_linger_each_event_goes_as_it_comes() -> None:
    sink = ScriptedSink()
    reporter = await _report_one_by_one(sink, 3, senders=1, linger_seconds=0)
    await reporter.close()
    assert sink.batches == [["EV_0"], ["EV_1"], ["EV_2"]]


async def test_events_that_come_while_a_sender_lingers_go_together() -> None:
    sink = ScriptedSink()
    # Four senders, as by default: only the one gathering takes events, so the other
    # three do not each send one of them.
    reporter = await _report_one_by_one(sink, 3, linger_seconds=60.0)
    assert sink.batches == []
    await reporter.close()
    assert sink.batches == [["EV_0", "EV_1", "EV_2"]]


async def test_a_whole_batch_goes_without_waiting_out_the_linger() -> None:
    sink = ScriptedSink()
    reporter = await _report_one_by_one(sink, 3, max_batch=3, linger_seconds=60.0)
    async with asyncio.timeout(10):
        await sink.recorded.wait()
    assert sink.batches == [["EV_0", "EV_1", "EV_2"]]
    await reporter.close()


async def test_closing_ends_the_linger_and_sends_what_waits() -> None:
    sink = ScriptedSink()
    registry = CollectorRegistry()
    config = CallReportingConfig(target="test", linger_seconds=60.0, drain_seconds=10.0)
    reporter = CallReporter(sink, config, CallReporterMetrics(registry))
    await reporter.start()
    reporter.report(CallEvent(event_id="EV_0", room="room-1"))
    await asyncio.sleep(0.05)  # the sender holds it and lingers
    async with asyncio.timeout(10):
        await reporter.close()
    assert sink.batches == [["EV_0"]]
    assert _counts(registry)["sent"] == 1


async def test_a_batch_counts_its_refusals_apart_and_retries_as_a_whole() -> None:
    sink = ScriptedSink(SinkUnavailable("down"), refuse=frozenset({"EV_1"}))
    counts = await _report_while_busy(sink, 3, max_attempts=2, initial_backoff_seconds=0.001, max_backoff_seconds=0.002)
    assert counts == {"sent": 2, "gave_up": 0, "rejected": 1}
    assert sink.batches == [["EV_0", "EV_1", "EV_2"]] * 2


async def test_a_batch_that_gives_up_drops_every_event_in_it() -> None:
    sink = ScriptedSink(SinkUnavailable("down"), SinkUnavailable("down"))
    counts = await _report_while_busy(sink, 4, max_attempts=2, initial_backoff_seconds=0.001, max_backoff_seconds=0.002)
    assert counts == {"sent": 0, "gave_up": 4, "rejected": 0}


async def test_max_batch_is_held_to_what_record_call_events_takes() -> None:
    sink = ScriptedSink()
    await _report_while_busy(sink, 501, max_batch=10_000, queue_size=1000)
    assert [len(batch) for batch in sink.batches] == [MAX_BATCH, 1]
