"""Frozen configuration of CallHistoryService's domain logic (storage, retention, privacy,
the no-agent timeout), read from the environment in one place. Server settings (port,
token, TLS) belong to the shared gRPC runtime's config."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.calls.outbox import CallEventsConfig
from services.common.env import ConfigError, Environment, setting

MEMORY_DATABASE = ":memory:"
SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class CallerNumbers(enum.Enum):
    """How much of a caller's number is kept: it is personal data."""

    MASKED = "masked"
    FULL = "full"


def default_database_url() -> str:
    """An SQLite file under the user's data directory: `friday up` keeps its history across runs."""
    try:
        import platformdirs

        data_dir = Path(platformdirs.user_data_dir("friday", appauthor=False))
    except ImportError:  # pragma: no cover - platformdirs is a dependency; the fallback is its Linux answer
        data_dir = Path.home() / ".local" / "share" / "friday"
    return f"sqlite:///{data_dir / 'calls.sqlite3'}"


def driver_url(url: str) -> str:
    """The SQLAlchemy URL with the driver the store runs on: people write `postgresql://…` and
    `sqlite:///…`; the store runs asyncpg (`postgresql+asyncpg://…`) and the standard
    library's sqlite3 on a thread of its own (`sqlite+pysqlite:///…`, transactions.py)."""
    if url == MEMORY_DATABASE:
        return "sqlite+pysqlite:///:memory:"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"CALLS_DATABASE_URL={url!r} is not a database URL (postgresql://… or sqlite:///…)")
    base = scheme.split("+", 1)[0]
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+pysqlite://{rest}"
    raise ConfigError(f"CALLS_DATABASE_URL={url!r}: only postgresql:// and sqlite:/// are supported")


@dataclass(frozen=True)
class StoreConfig:
    # PostgreSQL in production; the SQLite default keeps `friday up` self-contained.
    database_url: str = field(default_factory=default_database_url, repr=False)
    # PostgreSQL schema for the tables (created if missing); empty = the server's search_path.
    database_schema: str = ""


@dataclass(frozen=True)
class CallsConfig:
    store: StoreConfig = field(default_factory=StoreConfig)
    # Calls (and their events) older than this are deleted by the periodic sweep; 0 keeps them.
    retention_days: float = setting("CALLS_RETENTION_DAYS", 90.0)
    caller_numbers: CallerNumbers = setting("CALLS_STORE_CALLER_NUMBERS", CallerNumbers.MASKED)
    # A call whose agent has not joined this long after the caller did is a no_agent call:
    # the caller has heard ringing for this long, nobody is coming.
    no_agent_seconds: float = setting("CALLS_NO_AGENT_SECONDS", 20.0)
    # How often the sweep decides overdue calls as no_agent, counts settled calls and applies retention.
    sweep_interval_seconds: float = setting("CALLS_SWEEP_INTERVAL_SECONDS", 5.0)
    # A decided call is counted in friday_calls_total once its record has not changed for this
    # long, whether or not it has ended. A late event can still change its outcome until then:
    # LiveKit drops a webhook that waited 30 s in its queue and retries for 15 s more, the
    # gateway's reporter for ~20 s.
    settle_seconds: float = setting("CALLS_SETTLE_SECONDS", 60.0)
    # The biggest page ListCalls answers.
    max_page_size: int = setting("CALLS_MAX_PAGE_SIZE", 500)
    # Signed call events out (CALL_EVENTS_URL), from the outbox.
    events: CallEventsConfig = field(default_factory=CallEventsConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CallsConfig:
        env = Environment(environ)
        config = env.fields(
            cls,
            store=StoreConfig(
                database_url=env.optional("CALLS_DATABASE_URL") or default_database_url(),
                database_schema=env.text("CALLS_DATABASE_SCHEMA", ""),
            ),
            events=CallEventsConfig.from_env(environ),
        )
        driver_url(config.store.database_url)  # refuse a bad URL at start-up, naming the variable
        if config.store.database_schema and not SCHEMA_NAME.match(config.store.database_schema):
            # It is spliced into CREATE SCHEMA and search_path: a plain name only.
            raise ConfigError(f"CALLS_DATABASE_SCHEMA={config.store.database_schema!r} is not a plain SQL name")
        if config.no_agent_seconds <= 0:
            raise ConfigError(f"CALLS_NO_AGENT_SECONDS={config.no_agent_seconds!r} must be above 0")
        if config.sweep_interval_seconds <= 0:
            raise ConfigError(f"CALLS_SWEEP_INTERVAL_SECONDS={config.sweep_interval_seconds!r} must be above 0")
        if config.settle_seconds < 0:
            raise ConfigError(f"CALLS_SETTLE_SECONDS={config.settle_seconds!r} must be 0 or more")
        if config.retention_days < 0:
            raise ConfigError(f"CALLS_RETENTION_DAYS={config.retention_days!r} must be 0 (keep) or more")
        return config
