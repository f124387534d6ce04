"""PersonaService settings (everything except how the gRPC server listens, which is
`services.grpc_runtime.ServerConfig.from_env("PERSONA", ...)`), read from the
environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

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
        return cls(
            crm=CrmConfig(
                api_base=env.optional("PERSONA_API_BASE"),
                number_format=env.enum("PERSONA_CRM_NUMBER_FORMAT", CrmConfig.number_format),
                attempt_timeout_seconds=env.number("PERSONA_CRM_TIMEOUT", CrmConfig.attempt_timeout_seconds),
                max_attempts=env.integer("PERSONA_CRM_MAX_ATTEMPTS", CrmConfig.max_attempts),
                backoff_initial_seconds=env.number("PERSONA_CRM_BACKOFF_INITIAL", CrmConfig.backoff_initial_seconds),
                backoff_max_seconds=env.number("PERSONA_CRM_BACKOFF_MAX", CrmConfig.backoff_max_seconds),
                probe_interval_seconds=env.number("PERSONA_CRM_PROBE_INTERVAL", CrmConfig.probe_interval_seconds),
                breaker_failures=_not_negative(
                    "PERSONA_CRM_BREAKER_FAILURES",
                    env.integer("PERSONA_CRM_BREAKER_FAILURES", CrmConfig.breaker_failures),
                ),
                breaker_cooldown_seconds=_not_negative(
                    "PERSONA_CRM_BREAKER_COOLDOWN",
                    env.number("PERSONA_CRM_BREAKER_COOLDOWN", CrmConfig.breaker_cooldown_seconds),
                ),
            ),
            cache=CacheConfig(
                ttl_seconds=env.number("PERSONA_CACHE_TTL", CacheConfig.ttl_seconds),
                negative_ttl_seconds=env.number("PERSONA_NEGATIVE_TTL", CacheConfig.negative_ttl_seconds),
                max_stale_seconds=env.number("PERSONA_MAX_STALE", CacheConfig.max_stale_seconds),
                max_entries=env.integer("PERSONA_CACHE_MAX_ENTRIES", CacheConfig.max_entries),
                last_known_good_max_entries=_not_negative(
                    "PERSONA_LAST_KNOWN_GOOD_MAX_ENTRIES",
                    env.integer("PERSONA_LAST_KNOWN_GOOD_MAX_ENTRIES", CacheConfig.last_known_good_max_entries),
                ),
                redis_url=env.optional("REDIS_URL"),
                redis_key_prefix=env.text("PERSONA_REDIS_PREFIX", CacheConfig.redis_key_prefix),
                redis_cooldown_seconds=env.number("PERSONA_REDIS_COOLDOWN", CacheConfig.redis_cooldown_seconds),
            ),
            new_numbers=NewNumberLimits(
                rate=_not_negative(
                    "PERSONA_NEW_NUMBER_RATE", env.number("PERSONA_NEW_NUMBER_RATE", NewNumberLimits.rate)
                ),
                burst=_not_negative(
                    "PERSONA_NEW_NUMBER_BURST", env.integer("PERSONA_NEW_NUMBER_BURST", NewNumberLimits.burst)
                ),
                peer_rate=_not_negative(
                    "PERSONA_NEW_NUMBER_PEER_RATE",
                    env.number("PERSONA_NEW_NUMBER_PEER_RATE", NewNumberLimits.peer_rate),
                ),
                peer_burst=_not_negative(
                    "PERSONA_NEW_NUMBER_PEER_BURST",
                    env.integer("PERSONA_NEW_NUMBER_PEER_BURST", NewNumberLimits.peer_burst),
                ),
                peer_exempt=_networks(env, "PERSONA_NEW_NUMBER_PEER_EXEMPT"),
            ),
            watch=WatchConfig(
                keepalive_seconds=env.number("PERSONA_WATCH_KEEPALIVE", WatchConfig.keepalive_seconds),
                buffer=env.integer("PERSONA_WATCH_BUFFER", WatchConfig.buffer),
                history=env.integer("PERSONA_WATCH_HISTORY", WatchConfig.history),
            ),
            persona_file=env.optional("PERSONA_FILE"),
            default_region=env.text("PERSONA_DEFAULT_REGION", cls.default_region).upper(),
            request_budget_seconds=env.number("PERSONA_REQUEST_BUDGET", cls.request_budget_seconds),
        )


Number = TypeVar("Number", int, float)


def _not_negative(name: str, value: Number) -> Number:
    if value < 0:
        raise ConfigError(f"{name}={value!r} must not be negative")
    return value


def _networks(env: Environment, name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses / CIDR networks, each checked."""
    raw = env.optional(name) or ""
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        parse_networks(entries)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a list of IP addresses or networks: {exc}") from None
    return entries
