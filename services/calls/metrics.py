"""Prometheus metrics of CallHistoryService, on the server's own registry. The names are
a contract with the dashboards and alert rules (deploy/): change them only together."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Answer time is ringing heard by the caller: seconds, not milliseconds.
ANSWER_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)


class CallsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.calls = Counter(
            "friday_calls",
            "Decided calls, each counted once under its final outcome once its record settled "
            "(CALLS_SETTLE_SECONDS after its last change, ended or not): answered (an agent joined in time), no_agent "
            "(none joined within CALLS_NO_AGENT_SECONDS), abandoned (the caller left before the agent joined).",
            ["outcome"],
            registry=self.registry,
        )
        self.answer_seconds = Histogram(
            "friday_call_answer_seconds",
            "Agent join minus the caller's SIP join, by LiveKit's timestamps, of the calls counted answered "
            "in friday_calls_total (observed when they are).",
            buckets=ANSWER_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "friday_calls_in_progress",
            "Calls that started and have not ended (in the whole database, so the same at every replica).",
            registry=self.registry,
        )
        for outcome in ("answered", "no_agent", "abandoned"):
            self.calls.labels(outcome)  # every outcome is exported from the start, at 0
