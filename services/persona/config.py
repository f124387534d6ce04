"""PersonaService settings (everything except how the gRPC server listens, which is
`services.grpc_runtime.ServerConfig.from_env("PERSONA", ...)`), read from the
environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.env import ConfigError, Environment
from services.persona.admission import NewNumberLimits, parse_networks
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
    # After this many CRM fetches in a row failed (each after its retries), stop asking the
    # CRM for breaker_cooldown_seconds, then let one fetch test it. 0 = no breaker.
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 5.0


@dataclass(frozen=True)
class CacheConfig:
    """The in-process cache, and Redis shared by the replicas when `redis_url` is set."""

    ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 30.0
    max_stale_seconds: float = 86_400.0
    max_entries: int = 10_000
    # Numbers that were served a persona, kept for stale-on-error where a flood of other
    # numbers cannot push them out (see last_known_good.py).
    last_known_good_max_entries: int = 10_000
    redis_url: str | None = None
    redis_key_prefix: str = "friday:persona:"
    # After a Redis failure, skip Redis (in-process cache only) this long before trying again.
    redis_cooldown_seconds: float = 5.0


@dataclass(frozen=True)
class WatchConfig:
    """WatchPersonas: how subscribers hear of persona changes."""

    keepalive_seconds: float = 15.0  # a keep-alive event after this long without a change
    buffer: int = 256  # changes a subscriber may fall behind before it is cut off
    history: int = 10_000  # changes kept for subscribers that resume (in Redis: the stream's length)


@dataclass(frozen=True)
class PersonaConfig:
    # Sources: the CRM when crm.api_base is set, else persona_file, else the bundled example.
    crm: CrmConfig = CrmConfig()
    cache: CacheConfig = CacheConfig()
    # CRM fetches for numbers with no cached or last-known-good trace (admission.py).
    new_numbers: NewNumberLimits = NewNumberLimits()
    watch: WatchConfig = WatchConfig()
    persona_file: str | None = None
    # Numbers without a country code are read in this region.
    default_region: str = "IN"
    # Budget for one GetPersona when the caller sets no (or a longer) deadline.
    request_budget_seconds: float = 3.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PersonaConfig:
        env = Environment(environ)
        crm = {
            "api_base": "PERSONA_API_BASE",
            "number_format": "PERSONA_CRM_NUMBER_FORMAT",
            "attempt_timeout_seconds": "PERSONA_CRM_TIMEOUT",
            "max_attempts": "PERSONA_CRM_MAX_ATTEMPTS",
            "backoff_initial_seconds": "PERSONA_CRM_BACKOFF_INITIAL",
            "backoff_max_seconds": "PERSONA_CRM_BACKOFF_MAX",
            "probe_interval_seconds": "PERSONA_CRM_PROBE_INTERVAL",
            "breaker_failures": "PERSONA_CRM_BREAKER_FAILURES",
            "breaker_cooldown_seconds": "PERSONA_CRM_BREAKER_COOLDOWN",
        }
        cache = {
            "ttl_seconds": "PERSONA_CACHE_TTL",
            "negative_ttl_seconds": "PERSONA_NEGATIVE_TTL",
            "max_stale_seconds": "PERSONA_MAX_STALE",
            "max_entries": "PERSONA_CACHE_MAX_ENTRIES",
            "last_known_good_max_entries": "PERSONA_LAST_KNOWN_GOOD_MAX_ENTRIES",
            "redis_url": "REDIS_URL",
            "redis_key_prefix": "PERSONA_REDIS_PREFIX",
            "redis_cooldown_seconds": "PERSONA_REDIS_COOLDOWN",
        }
        new_numbers = {
            "rate": "PERSONA_NEW_NUMBER_RATE",
            "burst": "PERSONA_NEW_NUMBER_BURST",
            "peer_rate": "PERSONA_NEW_NUMBER_PEER_RATE",
            "peer_burst": "PERSONA_NEW_NUMBER_PEER_BURST",
        }
        watch = {
            "keepalive_seconds": "PERSONA_WATCH_KEEPALIVE",
            "buffer": "PERSONA_WATCH_BUFFER",
            "history": "PERSONA_WATCH_HISTORY",
        }
        return env.fields(
            cls,
            {"persona_file": "PERSONA_FILE", "request_budget_seconds": "PERSONA_REQUEST_BUDGET"},
            crm=env.fields(CrmConfig, crm, not_negative=("breaker_failures", "breaker_cooldown_seconds")),
            cache=env.fields(CacheConfig, cache, not_negative=("last_known_good_max_entries",)),
            new_numbers=env.fields(
                NewNumberLimits,
                new_numbers,
                not_negative=new_numbers.keys(),
                peer_exempt=_networks(env, "PERSONA_NEW_NUMBER_PEER_EXEMPT"),
            ),
            watch=env.fields(WatchConfig, watch),
            default_region=env.text("PERSONA_DEFAULT_REGION", cls.default_region).upper(),
        )


def _networks(env: Environment, name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses / CIDR networks, each checked."""
    raw = env.optional(name) or ""
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        parse_networks(entries)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a list of IP addresses or networks: {exc}") from None
    return entries
