"""PersonaService settings (everything except how the gRPC server listens, which is
`services.grpc_runtime.ServerConfig.from_env("PERSONA", ...)`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.persona.numbers import CrmNumberFormat

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9101


@dataclass(frozen=True)
class PersonaConfig:
    # Sources: the CRM when api_base is set, else persona_file, else the bundled example.
    api_base: str | None = None
    persona_file: str | None = None
    # Numbers
    default_region: str = "IN"
    crm_number_format: CrmNumberFormat = CrmNumberFormat.NATIONAL
    # CRM calls
    crm_attempt_timeout_seconds: float = 1.5
    crm_max_attempts: int = 3
    crm_backoff_initial_seconds: float = 0.05
    crm_backoff_max_seconds: float = 0.5
    crm_probe_interval_seconds: float = 15.0  # 0 = health follows request outcomes only
    # Budget for one GetPersona when the caller sets no (or a longer) deadline.
    request_budget_seconds: float = 3.0
    # Cache
    cache_ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 30.0
    max_stale_seconds: float = 86_400.0
    cache_max_entries: int = 10_000
    redis_url: str | None = None
    redis_key_prefix: str = "friday:persona:"
    # After a Redis failure, skip Redis (in-process cache only) this long before trying again.
    redis_cooldown_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PersonaConfig:
        env = os.environ if environ is None else environ
        d = cls()

        def text(name: str, default: str | None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def number(name: str, default: float) -> float:
            value = env.get(name, "").strip()
            return float(value) if value else default

        return cls(
            api_base=text("PERSONA_API_BASE", None),
            persona_file=text("PERSONA_FILE", None),
            default_region=(text("PERSONA_DEFAULT_REGION", d.default_region) or d.default_region).upper(),
            crm_number_format=CrmNumberFormat(
                (text("PERSONA_CRM_NUMBER_FORMAT", d.crm_number_format.value) or "").lower()
            ),
            crm_attempt_timeout_seconds=number("PERSONA_CRM_TIMEOUT", d.crm_attempt_timeout_seconds),
            crm_max_attempts=int(number("PERSONA_CRM_MAX_ATTEMPTS", d.crm_max_attempts)),
            crm_backoff_initial_seconds=number("PERSONA_CRM_BACKOFF_INITIAL", d.crm_backoff_initial_seconds),
            crm_backoff_max_seconds=number("PERSONA_CRM_BACKOFF_MAX", d.crm_backoff_max_seconds),
            crm_probe_interval_seconds=number("PERSONA_CRM_PROBE_INTERVAL", d.crm_probe_interval_seconds),
            request_budget_seconds=number("PERSONA_REQUEST_BUDGET", d.request_budget_seconds),
            cache_ttl_seconds=number("PERSONA_CACHE_TTL", d.cache_ttl_seconds),
            negative_ttl_seconds=number("PERSONA_NEGATIVE_TTL", d.negative_ttl_seconds),
            max_stale_seconds=number("PERSONA_MAX_STALE", d.max_stale_seconds),
            cache_max_entries=int(number("PERSONA_CACHE_MAX_ENTRIES", d.cache_max_entries)),
            redis_url=text("REDIS_URL", None),
            redis_key_prefix=text("PERSONA_REDIS_PREFIX", d.redis_key_prefix) or d.redis_key_prefix,
            redis_cooldown_seconds=number("PERSONA_REDIS_COOLDOWN", d.redis_cooldown_seconds),
        )
