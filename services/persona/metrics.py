"""PersonaService metrics, registered on the server's own CollectorRegistry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.grpc_runtime.metrics import MetricSet


class PersonaMetrics(MetricSet):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.requests = self.counter(
            "persona_requests_total",
            "GetPersona calls by gRPC code and persona source (source 'none' on errors).",
            ["code", "source"],
        )
        self.crm_latency = self.histogram(
            "persona_crm_request_seconds",
            "Latency of single CRM HTTP attempts, by outcome (HTTP status, timeout, transport).",
            ["outcome"],
        )
        self.crm_errors = self.counter(
            "persona_crm_errors_total",
            "Failed CRM attempts by kind: transport, timeout, http_5xx, http_429, http_4xx, malformed, deadline,"
            " error (unforeseen).",
            ["kind"],
        )
        self.crm_retries = self.counter("persona_crm_retries_total", "CRM attempts retried.")
        self.cache_hits = self.counter("persona_cache_hits_total", "Fresh cache hits (incl. negative).")
        self.cache_misses = self.counter("persona_cache_misses_total", "Lookups that had to ask the source.")
        self.stale_serves = self.counter(
            "persona_stale_served_total",
            "Personas served past their TTL: while a background refresh runs, or because the CRM failed.",
        )
        self.default_serves = self.counter(
            "persona_default_served_total",
            "Default personas served, by why: not_found, unavailable, deadline, invalid, rate_limited,"
            " no_variant (a campaign chose none).",
            ["why"],
        )
        self.watchers = self.gauge("persona_watchers", "WatchPersonas streams open on this replica.")
        self.watchers_dropped = self.counter(
            "persona_watchers_dropped_total", "WatchPersonas subscribers cut off because they fell behind their buffer."
        )
        self.changes_published = self.counter(
            "persona_changes_published_total",
            "New persona versions this replica saw at the source and published to every replica's watchers.",
        )
        self.campaign_selections = self.counter(
            "persona_campaign_selections_total",
            "Campaign answers reduced to one variant, by the rule that chose it: closed_hours, caller_match,"
            " weighted, default_variant, none (no rule matched and no default variant).",
            ["rule"],
        )
        self.background_refreshes = self.counter(
            "persona_background_refreshes_total",
            "Refreshes of a stale entry started after serving it (stale-while-revalidate), by outcome: ok,"
            " not_found, failed, skipped (breaker open).",
            ["outcome"],
        )
        self.breaker_state = self.gauge(
            "persona_crm_breaker_state",
            "The CRM circuit breaker: 0 closed, 1 half-open (one fetch testing the CRM), 2 open.",
        )
        self.breaker_transitions = self.counter(
            "persona_crm_breaker_transitions_total", "CRM circuit breaker state changes, by the state entered.", ["to"]
        )
        self.breaker_short_circuits = self.counter(
            "persona_crm_breaker_short_circuits_total",
            "Lookups answered without asking the CRM because its breaker was open (stale, default or error).",
        )
        self.new_number_refusals = self.counter(
            "persona_new_number_fetches_refused_total",
            "CRM fetches for never-seen numbers refused by the new-number rate limit, by limit: peer, overall.",
            ["limit"],
        )
        self.coalesced = self.counter(
            "persona_coalesced_requests_total",
            "Lookups that joined an in-flight fetch for the same number instead of asking the CRM.",
        )
        self.peer_waits = self.counter(
            "persona_peer_fetch_waits_total",
            "Lookups that waited for another replica's CRM fetch (fetch lease held elsewhere).",
        )
        self.cache_corrupt = self.counter(
            "persona_cache_corrupt_entries_total",
            "Redis entries that could not be decoded (treated as a miss and fetched again).",
        )
        self.redis_errors = self.counter(
            "persona_redis_errors_total",
            "Redis operations that failed (the in-process cache was used instead).",
            ["op"],
        )
