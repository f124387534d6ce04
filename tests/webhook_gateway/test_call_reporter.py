"""CallReporter's retries against a sink that fails on cue: the first attempt, made before
any retry set-up, counts as one of `max_attempts`, and what follows a failure is tenacity's."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from friday.calls.v1.call_pb2 import CallEvent
from services.webhook_gateway.call_reporter import (
    CallReporter,
    CallReporterMetrics,
    CallReportingConfig,
    SinkRejected,
    SinkUnavailable,
)

pytestmark = pytest.mark.asyncio


class ScriptedSink:
    """Raises the scripted failures in turn, then acknowledges."""

    def __init__(self, *failures: Exception) -> None:
        self._failures = list(failures)
        self.attempts = 0

    async def record(self, event: CallEvent, *, timeout: float) -> None:
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)


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
