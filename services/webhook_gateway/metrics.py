"""Prometheus metrics of the gateway, on a registry of its own so several
gateways in one test process do not collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "friday_gateway_webhooks",
            "Webhooks received, by LiveKit event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.dispatch_latency = Histogram(
            "friday_gateway_dispatch_latency_seconds",
            "Webhook received to dispatch confirmed, for SIP joins",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.persona_sources = Counter(
            "friday_gateway_persona_sources",
            "Personas dispatched, by where they came from",
            ["source"],
            registry=self.registry,
        )
        self.defaults_used = Counter(
            "friday_gateway_default_personas",
            "Calls dispatched with the default persona because nothing better was available",
            registry=self.registry,
        )
        self.call_facts_dropped = Counter(
            "friday_gateway_call_facts_dropped",
            "Call facts left out of a call because their value had the wrong shape, by fact name",
            ["fact"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "friday_gateway_duplicate_webhooks",
            "Webhooks dropped because their event id already produced a dispatch",
            registry=self.registry,
        )

    def count_dropped_fact(self, fact: str) -> None:
        self.call_facts_dropped.labels(fact).inc()
