"""Prometheus metrics of the dispatcher, registered on the server's own registry
(the shared runtime gives each server one, so two dispatchers in one test process
never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.grpc_runtime import LATENCY_BUCKETS


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.dispatches = Counter(
            "friday_dispatcher_dispatches_total",
            "DispatchAgent outcomes: created, already_existed, or failed (with the gRPC code).",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.livekit_latency = Histogram(
            "friday_dispatcher_livekit_request_seconds",
            "Latency of one LiveKit AgentDispatchService request (one attempt), by method and result.",
            ["method", "result"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.livekit_retries = Counter(
            "friday_dispatcher_livekit_retries_total",
            "LiveKit requests retried after a 5xx, 429 or transport failure, by method.",
            ["method"],
            registry=self.registry,
        )
        self.claim_waits = Counter(
            "friday_dispatcher_claim_waits_total",
            "DispatchAgent calls that found their call claimed by another request and waited for its dispatch.",
            registry=self.registry,
        )
        self.degraded_claims = Counter(
            "friday_dispatcher_degraded_claims_total",
            "Calls claimed in this process only because the shared claim store (Redis) was unreachable.",
            registry=self.registry,
        )
        self.claims_degraded = Gauge(
            "friday_dispatcher_claims_degraded",
            "1 while the shared claim store (Redis) is unreachable and calls are claimed in process.",
            registry=self.registry,
        )
        self.duplicates_removed = Counter(
            "friday_dispatcher_duplicate_dispatches_removed_total",
            "Extra dispatches of a call's agent deleted after two creates landed (the oldest was kept).",
            registry=self.registry,
        )
        self.no_worker = Counter(
            "friday_dispatcher_no_agent_worker_total",
            "Dispatches withdrawn because no agent worker took the job in time (the caller would ring out).",
            registry=self.registry,
        )
        self.failed_jobs = Counter(
            "friday_dispatcher_failed_jobs_total",
            "Dispatches whose job failed at the worker and were replaced.",
            registry=self.registry,
        )
        self.job_wait = Histogram(
            "friday_dispatcher_job_wait_seconds",
            "Time from a dispatch existing to a worker holding its job.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def record_dispatch(self, outcome: str, code: str = "OK") -> None:
        self.dispatches.labels(outcome=outcome, code=code).inc()
