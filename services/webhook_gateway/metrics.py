"""Prometheus metrics of the gateway, on a registry of its own so several
gateways in one test process do not collide."""

from __future__ import annotations

from services.grpc_runtime.metrics import LabelledChildren, MetricSet


class GatewayMetrics(MetricSet):
    def __init__(self) -> None:
        super().__init__()
        self.webhooks = self.counter(
            "friday_gateway_webhooks", "Webhooks received, by LiveKit event and outcome", ["event", "outcome"]
        )
        self.dispatch_latency = self.histogram(
            "friday_gateway_dispatch_latency_seconds",
            "Webhook received to dispatch confirmed, for SIP joins",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.persona_sources = self.counter(
            "friday_gateway_persona_sources", "Personas dispatched, by where they came from", ["source"]
        )
        self.defaults_used = self.counter(
            "friday_gateway_default_personas",
            "Calls dispatched with the default persona because nothing better was available",
        )
        self.call_facts_dropped = self.counter(
            "friday_gateway_call_facts_dropped",
            "Call facts left out of a call because their value had the wrong shape, by fact name",
            ["fact"],
        )
        self.duplicates = self.counter(
            "friday_gateway_duplicate_webhooks", "Webhooks dropped because their event id already produced a dispatch"
        )
        # Every webhook counts an outcome, every dispatch a source: resolved once per label values.
        self._webhook_children = LabelledChildren(self.webhooks)
        self._persona_source_children = LabelledChildren(self.persona_sources)

    def count_webhook(self, event: str, outcome: str) -> None:
        self._webhook_children(event, outcome).inc()

    def count_persona_source(self, source: str) -> None:
        self._persona_source_children(source).inc()

    def count_dropped_fact(self, fact: str) -> None:
        self.call_facts_dropped.labels(fact).inc()
