"""CallsConfig from the environment: defaults, the URL forms people write, refusals that name the variable."""

from __future__ import annotations

import pytest

from services.calls.config import CallerNumbers, CallsConfig, default_database_url, driver_url
from services.calls.records import mask_number
from services.common.env import ConfigError


def test_defaults_keep_friday_up_self_contained() -> None:
    config = CallsConfig.from_env({})
    assert config.store.database_url == default_database_url()
    assert config.store.database_url.startswith("sqlite:///") and config.store.database_url.endswith("calls.sqlite3")
    assert config.caller_numbers is CallerNumbers.MASKED
    assert config.retention_days == 90 and config.no_agent_seconds == 20


def test_settings_are_read() -> None:
    config = CallsConfig.from_env(
        {
            "CALLS_DATABASE_URL": "postgresql://root@127.0.0.1:5432/test",
            "CALLS_DATABASE_SCHEMA": "friday_calls",
            "CALLS_RETENTION_DAYS": "7",
            "CALLS_STORE_CALLER_NUMBERS": "FULL",
            "CALLS_NO_AGENT_SECONDS": "12.5",
        }
    )
    assert config.store.database_schema == "friday_calls"
    assert config.retention_days == 7
    assert config.caller_numbers is CallerNumbers.FULL
    assert config.no_agent_seconds == 12.5


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///tmp/calls.db", "sqlite+pysqlite:///tmp/calls.db"),
        (":memory:", "sqlite+pysqlite:///:memory:"),
    ],
)
def test_database_urls_get_the_store_s_driver(url: str, expected: str) -> None:
    assert driver_url(url) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CALLS_DATABASE_URL": "mysql://h/db"}, "CALLS_DATABASE_URL"),
        ({"CALLS_DATABASE_URL": "calls.db"}, "CALLS_DATABASE_URL"),
        ({"CALLS_STORE_CALLER_NUMBERS": "some"}, "CALLS_STORE_CALLER_NUMBERS"),
        ({"CALLS_NO_AGENT_SECONDS": "0"}, "CALLS_NO_AGENT_SECONDS"),
        ({"CALLS_RETENTION_DAYS": "-1"}, "CALLS_RETENTION_DAYS"),
        ({"CALLS_DATABASE_SCHEMA": 'calls"; DROP TABLE x; --'}, "CALLS_DATABASE_SCHEMA"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        CallsConfig.from_env(environ)


def test_masking_keeps_the_last_four_digits() -> None:
    assert mask_number("+14155550100") == "+*******0100"
    assert mask_number("0044 20 7946 0958") == "**** ** **** 0958"
    assert mask_number("123") == "***"
