"""Prometheus metrics of the dispatcher, registered on the server's own registry
(the shared runtime gives each server one, so two dispatchers in one test process
never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.grpc_runtime.metrics import LabelledChildren, MetricSet


class DispatcherMetrics(MetricSet):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.dispatches = self.counter(
            "friday_dispatcher_dispatches_total",
            "DispatchAgent outcomes: created, already_existed, or failed (with the gRPC code).",
            ["outcome", "code"],
        )
        self.livekit_latency = self.histogram(
            "friday_dispatcher_livekit_request_seconds",
            "Latency of one LiveKit AgentDispatchService request (one attempt), by method and result.",
            ["method", "result"],
        )
        self.livekit_retries = self.counter(
            "friday_dispatcher_livekit_retries_total",
            "LiveKit requests retried after a 5xx, 429 or transport failure, by method.",
            ["method"],
        )
        self.late_landings = self.counter(
            "friday_dispatcher_late_landings_total",
            "Failed DispatchAgent calls whose create might still land, by what became of it: reported (it "
            "landed, a worker took it, the call history was told), not_reported (telling it failed), none (no "
            "served dispatch of ours in the settle time), not_watched (too many already awaited).",
            ["outcome"],
        )
        self.claim_waits = self.counter(
            "friday_dispatcher_claim_waits_total",
            "DispatchAgent calls that found their call claimed by another request and waited for its dispatch.",
        )
        self.degraded_claims = self.counter(
            "friday_dispatcher_degraded_claims_total",
            "Calls claimed in this process only because the shared claim store (Redis) was unreachable.",
        )
        self.claims_degraded = self.gauge(
            "friday_dispatcher_claims_degraded",
            "1 while the shared claim store (Redis) is unreachable and calls are claimed in process.",
        )
        self.duplicates_removed = self.counter(
            "friday_dispatcher_duplicate_dispatches_removed_total",
            "Extra dispatches of a call's agent this replica deleted after two creates landed (the oldest was kept).",
        )
        self.no_worker = self.counter(
            "friday_dispatcher_no_agent_worker_total",
            "Dispatches withdrawn because no agent worker took the job in time (the caller would ring out).",
        )
        self.failed_jobs = self.counter(
            "friday_dispatcher_failed_jobs_total", "Dispatches whose job failed at the worker and were replaced."
        )
        self._dispatch_children = LabelledChildren(self.dispatches)
        self.job_wait = self.histogram(
            "friday_dispatcher_job_wait_seconds",
            "Time from a dispatch existing to a worker holding its job.",
        )

    def record_dispatch(self, outcome: str, code: str = "OK") -> None:
        self._dispatch_children(outcome, code).inc()
