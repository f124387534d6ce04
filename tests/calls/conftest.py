"""Stores on both databases the service supports: a fresh SQLite file, and a schema of
its own in the machine's PostgreSQL (database `test`), dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from services.calls.config import StoreConfig

POSTGRES_URL = "postgresql://root@127.0.0.1:5432/test"


async def _postgres_reachable() -> bool:
    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreConfig]:
    """A StoreConfig naming an empty database; the test migrates it (by opening a store)."""
    if request.param == "sqlite":
        yield StoreConfig(database_url=f"sqlite:///{tmp_path / 'calls.sqlite3'}")
        return
    if not await _postgres_reachable():
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}")
    schema = f"calls_test_{secrets.token_hex(6)}"
    try:
        yield StoreConfig(database_url=POSTGRES_URL, database_schema=schema)
    finally:
        await drop_schema(schema)


class Clock:
    """The recorder's clock, moved by the test (call times themselves are LiveKit's, in the events)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> Callable[[], int]:
    return Clock(1_760_000_000_000)
