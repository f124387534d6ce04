"""The agent's Prometheus metrics, on prometheus_client's default registry: the one
livekit-agents serves when the worker runs with a `prometheus_port`."""

from __future__ import annotations

from prometheus_client import Counter

CALL_FACTS_DROPPED = Counter(
    "friday_agent_call_facts_dropped",
    "Call facts the agent left out because their value had the wrong shape, by fact name",
    ["fact"],
)


def count_dropped_fact(fact: str) -> None:
    CALL_FACTS_DROPPED.labels(fact).inc()
