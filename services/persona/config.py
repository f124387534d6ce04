"""PersonaService settings (everything except how the gRPC server listens, which is
`services.grpc_runtime.ServerConfig.from_env("PERSONA", ports.PERSONA)`), read from the
environment in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.env import ConfigError, Environment, setting
from services.persona.admission import NewNumberLimits, parse_networks
from services.persona.numbers import CrmNumberFormat


@dataclass(frozen=True)
class CrmConfig:
    """The CRM source: `GET <api_base>/<number>`, retried within the caller's deadline."""

    api_base: str | None = setting("PERSONA_API_BASE", None)  # unset: personas come from the persona file instead
    number_format: CrmNumberFormat = setting("PERSONA_CRM_NUMBER_FORMAT", CrmNumberFormat.NATIONAL)
    attempt_timeout_seconds: float = setting("PERSONA_CRM_TIMEOUT", 1.5)
    max_attempts: int = setting("PERSONA_CRM_MAX_ATTEMPTS", 3)
    backoff_initial_seconds: float = setting("PERSONA_CRM_BACKOFF_INITIAL", 0.05)
    backoff_max_seconds: float = setting("PERSONA_CRM_BACKOFF_MAX", 0.5)
    # 0 = health follows request outcomes only.
    probe_interval_seconds: float = setting("PERSONA_CRM_PROBE_INTERVAL", 15.0)
    # After this many CRM fetches in a row failed (each after its retries), stop asking the
    # CRM for breaker_cooldown_seconds, then let one fetch test it. 0 = no breaker.
    breaker_failures: int = setting("PERSONA_CRM_BREAKER_FAILURES", 5, not_negative=True)
    breaker_cooldown_seconds: float = setting("PERSONA_CRM_BREAKER_COOLDOWN", 5.0, not_negative=True)


@dataclass(frozen=True)
class CacheConfig:
    """The in-process cache, and Redis shared by the replicas when `redis_url` is set."""

    ttl_seconds: float = setting("PERSONA_CACHE_TTL", 300.0)
    negative_ttl_seconds: float = setting("PERSONA_NEGATIVE_TTL", 30.0)
    max_stale_seconds: float = setting("PERSONA_MAX_STALE", 86_400.0)
    max_entries: int = setting("PERSONA_CACHE_MAX_ENTRIES", 10_000)
    # Numbers that were served a persona, kept for stale-on-error where a flood of other
    # numbers cannot push them out (see last_known_good.py).
    last_known_good_max_entries: int = setting("PERSONA_LAST_KNOWN_GOOD_MAX_ENTRIES", 10_000, not_negative=True)
    redis_url: str | None = setting("REDIS_URL", None)
    redis_key_prefix: str = setting("PERSONA_REDIS_PREFIX", "friday:persona:")
    # After a Redis failure, skip Redis (in-process cache only) this long before trying again.
    redis_cooldown_seconds: float = setting("PERSONA_REDIS_COOLDOWN", 5.0)


@dataclass(frozen=True)
class WatchConfig:
    """WatchPersonas: how subscribers hear of persona changes."""

    # A keep-alive event after this long without a change.
    keepalive_seconds: float = setting("PERSONA_WATCH_KEEPALIVE", 15.0)
    # Changes a subscriber may fall behind before it is cut off.
    buffer: int = setting("PERSONA_WATCH_BUFFER", 256)
    # Changes kept for subscribers that resume (in Redis: the stream's length).
    history: int = setting("PERSONA_WATCH_HISTORY", 10_000)


@dataclass(frozen=True)
class PersonaConfig:
    # Sources: the CRM when crm.api_base is set, else persona_file, else the bundled example.
    crm: CrmConfig = CrmConfig()
    cache: CacheConfig = CacheConfig()
    # CRM fetches for numbers with no cached or last-known-good trace (admission.py).
    new_numbers: NewNumberLimits = NewNumberLimits()
    watch: WatchConfig = WatchConfig()
    persona_file: str | None = setting("PERSONA_FILE", None)
    # Numbers without a country code are read in this region.
    default_region: str = "IN"
    # Budget for one GetPersona when the caller sets no (or a longer) deadline.
    request_budget_seconds: float = setting("PERSONA_REQUEST_BUDGET", 3.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PersonaConfig:
        env = Environment(environ)
        return env.fields(
            cls,
            crm=env.fields(CrmConfig),
            cache=env.fields(CacheConfig),
            new_numbers=env.fields(NewNumberLimits, peer_exempt=_networks(env, "PERSONA_NEW_NUMBER_PEER_EXEMPT")),
            watch=env.fields(WatchConfig),
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
