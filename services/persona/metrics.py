"""PersonaService metrics, registered on the server's own CollectorRegistry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.grpc_runtime.metrics import LATENCY_BUCKETS


class PersonaMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "persona_requests_total",
            "GetPersona calls by gRPC code and persona source (source 'none' on errors).",
            ["code", "source"],
            registry=registry,
        )
        self.crm_latency = Histogram(
            "persona_crm_request_seconds",
            "Latency of single CRM HTTP attempts, by outcome (HTTP status, timeout, transport).",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.crm_errors = Counter(
            "persona_crm_errors_total",
            "Failed CRM attempts by kind: transport, timeout, http_5xx, http_429, http_4xx, malformed, deadline,"
            " error (unforeseen).",
            ["kind"],
            registry=registry,
        )
        self.crm_retries = Counter("persona_crm_retries_total", "CRM attempts retried.", registry=registry)
        self.cache_hits = Counter("persona_cache_hits_total", "Fresh cache hits (incl. negative).", registry=registry)
        self.cache_misses = Counter(
            "persona_cache_misses_total", "Lookups that had to ask the source.", registry=registry
        )
        self.stale_serves = Counter(
            "persona_stale_served_total", "Stale personas served because the CRM failed.", registry=registry
        )
        self.default_serves = Counter(
            "persona_default_served_total", "Default personas served, by why.", ["why"], registry=registry
        )
        self.coalesced = Counter(
            "persona_coalesced_requests_total",
            "Lookups that joined an in-flight fetch for the same number instead of asking the CRM.",
            registry=registry,
        )
        self.peer_waits = Counter(
            "persona_peer_fetch_waits_total",
            "Lookups that waited for another replica's CRM fetch (fetch lease held elsewhere).",
            registry=registry,
        )
        self.cache_corrupt = Counter(
            "persona_cache_corrupt_entries_total",
            "Redis entries that could not be decoded (treated as a miss and fetched again).",
            registry=registry,
        )
        self.redis_errors = Counter(
            "persona_redis_errors_total",
            "Redis operations that failed (the in-process cache was used instead).",
            ["op"],
            registry=registry,
        )
