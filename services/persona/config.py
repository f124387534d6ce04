"""PersonaService settings (everything except how the gRPC server listens, which is
`services.grpc_runtime.ServerConfig.from_env("PERSONA", ...)`), read from the
environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.env import Environment
from services.persona.numbers import CrmNumberFormat

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9101


@dataclass(frozen=True)
class CrmConfig:
    """The CRM source: `GET <api_base>/<number>`, retried within the caller's deadline."""

    api_base: str | None = None  # unset: personas come from the persona file instead
    number_format: CrmNumberFormat = CrmNumberFormat.NATIONAL
    attempt_timeout_seconds: float = 1.5
    max_attempts: int = 3
    backoff_initial_seconds: float = 0.05
    backoff_max_seconds: float = 0.5
    probe_interval_seconds: float = 15.0  # 0 = health follows request outcomes only


@dataclass(frozen=True)
class CacheConfig:
    """The in-process cache, and Redis shared by the replicas when `redis_url` is set."""

    ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 30.0
    max_stale_seconds: float = 86_400.0
    max_entries: int = 10_000
    redis_url: str | None = None
    redis_key_prefix: str = "friday:persona:"
    # After a Redis failure, skip Redis (in-process cache only) this long before trying again.
    redis_cooldown_seconds: float = 5.0


@dataclass(frozen=True)
class PersonaConfig:
    # Sources: the CRM when crm.api_base is set, else persona_file, else the bundled example.
    crm: CrmConfig = CrmConfig()
    cache: CacheConfig = CacheConfig()
    persona_file: str | None = None
    # Numbers without a country code are read in this region.
    default_region: str = "IN"
    # Budget for one GetPersona when the caller sets no (or a longer) deadline.
    request_budget_seconds: float = 3.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PersonaConfig:
        env = Environment(environ)
        return cls(
            crm=CrmConfig(
                api_base=env.optional("PERSONA_API_BASE"),
                number_format=env.enum("PERSONA_CRM_NUMBER_FORMAT", CrmConfig.number_format),
                attempt_timeout_seconds=env.number("PERSONA_CRM_TIMEOUT", CrmConfig.attempt_timeout_seconds),
                max_attempts=env.integer("PERSONA_CRM_MAX_ATTEMPTS", CrmConfig.max_attempts),
                backoff_initial_seconds=env.number("PERSONA_CRM_BACKOFF_INITIAL", CrmConfig.backoff_initial_seconds),
                backoff_max_seconds=env.number("PERSONA_CRM_BACKOFF_MAX", CrmConfig.backoff_max_seconds),
                probe_interval_seconds=env.number("PERSONA_CRM_PROBE_INTERVAL", CrmConfig.probe_interval_seconds),
            ),
            cache=CacheConfig(
                ttl_seconds=env.number("PERSONA_CACHE_TTL", CacheConfig.ttl_seconds),
                negative_ttl_seconds=env.number("PERSONA_NEGATIVE_TTL", CacheConfig.negative_ttl_seconds),
                max_stale_seconds=env.number("PERSONA_MAX_STALE", CacheConfig.max_stale_seconds),
                max_entries=env.integer("PERSONA_CACHE_MAX_ENTRIES", CacheConfig.max_entries),
                redis_url=env.optional("REDIS_URL"),
                redis_key_prefix=env.text("PERSONA_REDIS_PREFIX", CacheConfig.redis_key_prefix),
                redis_cooldown_seconds=env.number("PERSONA_REDIS_COOLDOWN", CacheConfig.redis_cooldown_seconds),
            ),
            persona_file=env.optional("PERSONA_FILE"),
            default_region=env.text("PERSONA_DEFAULT_REGION", cls.default_region).upper(),
            request_budget_seconds=env.number("PERSONA_REQUEST_BUDGET", cls.request_budget_seconds),
        )
