"""Transactions on PostgreSQL when the server closes a pooled connection (a restart, an
idle timeout, an operator's pg_terminate_backend): the next transaction runs once more
on a new connection, and the event is recorded as if nothing had happened."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from services.calls.config import StoreConfig
from services.calls.records import fold
from services.calls.store import SqlCallStore
from tests.calls import events as ev
from tests.calls.conftest import POSTGRES_URL, Clock, _postgres_reachable, drop_schema

pytestmark = pytest.mark.asyncio

_ALIVE = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"


def _backend_pid(connection: Connection) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
async def postgres_store(clock: Clock) -> AsyncIterator[SqlCallStore]:
    if not await _postgres_reachable():
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}")
    schema = f"calls_test_{secrets.token_hex(6)}"
    store = SqlCallStore(StoreConfig(database_url=POSTGRES_URL, database_schema=schema), clock_ms=clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await drop_schema(schema)


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        async with asyncio.timeout(30):
            while await admin.fetchval(_ALIVE, pid):  # noqa: ASYNC110 - the server sends no event for it
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def test_a_connection_the_server_closed_is_replaced_and_the_event_recorded(
    postgres_store: SqlCallStore, clock: Clock
) -> None:
    pooled = await postgres_store.run_in_transaction(_backend_pid)
    await _terminate(pooled)
    (result,) = await postgres_store.record(
        [ev.sip_joined("call-reconnect")], clock(), lambda events: fold(events, no_agent_seconds=20, now_ms=clock())
    )
    assert result.recorded
    assert await postgres_store.run_in_transaction(_backend_pid) != pooled
    found = await postgres_store.get_call("call-reconnect")
    assert found is not None and [e.event_id for e in found[1]] == [ev.sip_joined("call-reconnect").event_id]


_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1::text))"
_HOLDS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1"


async def test_a_transaction_postgresql_aborts_to_break_a_deadlock_runs_once_more(
    postgres_store: SqlCallStore,
) -> None:
    """Ours takes room-b, the other (waiting first) asks for room-b, ours asks for room-a,
    which the other holds: a cycle. The other never checks for deadlocks within the test,
    so ours, one second into its wait, is the transaction PostgreSQL aborts."""
    attempts: list[int] = []

    def b_then_a(connection: Connection) -> int:
        attempts.append(_backend_pid(connection))
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('room-b'))"))
        if len(attempts) == 1:
            # Time for the other to start waiting for room-b before ours waits for room-a.
            connection.execute(text("SELECT pg_sleep(1.5)"))
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('room-a'))"))
        return len(attempts)

    other = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await other.execute("SET deadlock_timeout = '10min'")
        async with other.transaction():
            await other.execute(_LOCK, "room-a")
            ours = asyncio.create_task(postgres_store.run_in_transaction(b_then_a))
            async with asyncio.timeout(30):
                while not attempts or not await other.fetchval(_HOLDS, attempts[0]):  # noqa: ASYNC110 - no event for it
                    await asyncio.sleep(0.02)
            await other.execute(_LOCK, "room-b")  # granted once ours is aborted
        async with asyncio.timeout(30):
            assert await ours == 2
    finally:
        await other.close()
