"""PersonaService metrics, registered on the server's own CollectorRegistry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
            "persona_stale_served_total",
            "Personas served past their TTL: while a background refresh runs, or because the CRM failed.",
            registry=registry,
        )
        self.default_serves = Counter(
            "persona_default_served_total",
            "Default personas served, by why: not_found, unavailable, deadline, invalid, rate_limited,"
            " no_variant (a campaign chose none).",
            ["why"],
            registry=registry,
        )
        self.watchers = Gauge("persona_watchers", "WatchPersonas streams open on this replica.", registry=registry)
        self.watchers_dropped = Counter(
            "persona_watchers_dropped_total",
            "WatchPersonas subscribers cut off because they fell behind their buffer.",
            registry=registry,
        )
        self.changes_published = Counter(
            "persona_changes_published_total",
            "New persona versions this replica saw at the source and published to every replica's watchers.",
            registry=registry,
        )
        self.campaign_selections = Counter(
            "persona_campaign_selections_total",
            "Campaign answers reduced to one variant, by the rule that chose it: closed_hours, caller_match,"
            " weighted, default_variant, none (no rule matched and no default variant).",
            ["rule"],
            registry=registry,
        )
        self.background_refreshes = Counter(
            "persona_background_refreshes_total",
            "Refreshes of a stale entry started after serving it (stale-while-revalidate), by outcome: ok,"
            " not_found, failed, skipped (breaker open).",
            ["outcome"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "persona_crm_breaker_state",
            "The CRM circuit breaker: 0 closed, 1 half-open (one fetch testing the CRM), 2 open.",
            registry=registry,
        )
        self.breaker_transitions = Counter(
            "persona_crm_breaker_transitions_total",
            "CRM circuit breaker state changes, by the state entered.",
            ["to"],
            registry=registry,
        )
        self.breaker_short_circuits = Counter(
            "persona_crm_breaker_short_circuits_total",
            "Lookups answered without asking the CRM because its breaker was open (stale, default or error).",
            registry=registry,
        )
        self.new_number_refusals = Counter(
            "persona_new_number_fetches_refused_total",
            "CRM fetches for never-seen numbers refused by the new-number rate limit, by limit: peer, overall.",
            ["limit"],
            registry=registry,
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
