"""Alembic migrations on both databases: a fresh database reaches the head revision with
the tables the code queries, and migrating again is a no-op that keeps the data."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from services.calls.migrate import VERSION_TABLE, _alembic_config, current_revision, head_revision, migrate
from services.calls.store import SqlCallStore
from tests.calls import events as ev
from tests.calls.conftest import Clock


async def test_migrations_create_the_schema_and_are_idempotent(store_config, clock: Clock) -> None:
    store = SqlCallStore(store_config, clock_ms=clock)
    try:
        assert await store.run_in_transaction(current_revision) is None
        await store.open()  # migrates
        assert await store.run_in_transaction(current_revision) == head_revision()
        tables = set(await store.run_in_transaction(lambda c: inspect(c).get_table_names()))
        indexes = await store.run_in_transaction(lambda c: {i["name"] for i in inspect(c).get_indexes("calls")})
        assert {"calls", "call_events", "call_outbox", VERSION_TABLE} <= tables
        assert "ix_calls_started" in indexes
        fold = lambda events: __import__("services.calls.records", fromlist=["fold"]).fold(  # noqa: E731
            events, no_agent_seconds=20, now_ms=clock()
        )
        await store.record([ev.sip_joined("call-mig")], clock(), fold)
        await store.run_in_transaction(migrate)  # a restart: nothing to do, nothing lost
        assert await store.run_in_transaction(current_revision) == head_revision()
        found = await store.get_call("call-mig")
        assert found is not None and found[0].room == "call-mig"
    finally:
        await store.close()


# One replica starting: open the store (which migrates), print the revision it reached.
REPLICA = """
import asyncio, sys
from services.calls.config import StoreConfig
from services.calls.migrate import current_revision
from services.calls.store import SqlCallStore

async def main() -> None:
    store = SqlCallStore(StoreConfig(database_url=sys.argv[1], database_schema=sys.argv[2]), clock_ms=lambda: 0)
    try:
        await store.open()
        print(await store.run_in_transaction(current_revision))
    finally:
        await store.close()

asyncio.run(main())
"""


def test_replicas_starting_together_take_turns_migrating(store_config) -> None:
    """Several CallHistoryService replicas share one PostgreSQL and each migrates at
    start-up; started at the same moment (a rollout, a node back) they must take turns.
    Racing `CREATE TABLE`s either fail all but one replica (which then crash-loops) or
    leave them waiting on each other's transactions. Separate processes, as replicas are:
    Alembic keeps its migration context in module state, one per process."""
    import subprocess
    import sys

    if not store_config.database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL; an SQLite file belongs to one process")
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, store_config.database_url, store_config.database_schema],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [replica.communicate(timeout=120) for replica in replicas]
    for replica, (out, err) in zip(replicas, outcomes, strict=True):
        assert replica.returncode == 0, err[-2000:]
        assert out.strip() == head_revision()


async def _migrated_to(store: SqlCallStore, schema: str, revision: str) -> None:
    """The store's database at an older revision, as a service of that time left it."""
    if schema:
        await store.run_in_transaction(lambda c: c.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')))
    await store.run_in_transaction(lambda c: command.upgrade(_alembic_config(c), revision))


async def test_calls_that_had_ended_before_the_counting_column_are_marked_counted(store_config, clock: Clock) -> None:
    """An old service counted a call when it was decided; the sweep must not count it again."""
    store = SqlCallStore(store_config, clock_ms=clock)
    try:
        await _migrated_to(store, store_config.database_schema, "0002")
        old_rows = [
            {"room": room, "ended": ended, "outcome": outcome, "record": b""}
            for room, ended, outcome in (("call-old-ended", 5, "answered"), ("call-old-ringing", None, ""))
        ]
        insert_old = text(
            "INSERT INTO calls (room, sip_call_id, started_at_ms, ended_at_ms, outcome, dialed_number,"
            " caller_number, persona_id, persona_version, persona_source, default_reason, dispatch_id,"
            " updated_at_ms, record) VALUES (:room, '', 1, :ended, :outcome, '', '', '', '', '', '', '',"
            " 7, :record)"
        )
        await store.run_in_transaction(lambda c: c.execute(insert_old, old_rows))
        await store.open()  # migrates to the head
        rows = dict(
            await store.run_in_transaction(lambda c: c.execute(text("SELECT room, counted_at_ms FROM calls")).all())
        )
        assert rows == {"call-old-ended": 7, "call-old-ringing": None}
    finally:
        await store.close()


async def test_counting_the_open_calls_reads_an_index_not_the_whole_history(store_config, clock: Clock) -> None:
    """Migration 0005 counts the open calls once, to start calls_open_count; over a table
    scan that count reads the whole history (90 days of calls by default)."""
    from sqlalchemy import func, select

    from services.calls.schema import calls

    store = SqlCallStore(store_config, clock_ms=clock)
    try:
        await store.open()
        indexes = await store.run_in_transaction(
            lambda c: {i["name"]: i["column_names"] for i in inspect(c).get_indexes("calls")}
        )
        assert indexes["ix_calls_open"][0] == "ended_at_ms"
        if store.sync_engine.dialect.name == "sqlite":  # PostgreSQL's planner may scan a tiny table anyway
            query = select(func.count()).where(calls.c.started_at_ms.is_not(None), calls.c.ended_at_ms.is_(None))
            compiled = str(query.compile(store.sync_engine, compile_kwargs={"literal_binds": True}))
            explained = await store.run_in_transaction(
                lambda c: c.execute(text("EXPLAIN QUERY PLAN " + compiled)).all()
            )
            plan = " ".join(str(row[-1]) for row in explained)
            assert "USING COVERING INDEX ix_calls_open" in plan, plan
    finally:
        await store.close()


async def test_the_count_of_open_calls_starts_at_the_calls_already_open(store_config, clock: Clock) -> None:
    """A database recorded before calls_open_count has calls in progress: the migration must
    count them in, or the gauge reads low (or below zero once they end) for good. The
    downgrade drops the row and upgrading again counts afresh."""
    from services.calls.records import fold
    from services.calls.schema import calls
    from services.calls.store import _row_values

    def record_of(events: list) -> dict:
        call = fold(events, no_agent_seconds=20, now_ms=clock())
        return {"room": events[0].room, **_row_values(call, clock())}

    store = SqlCallStore(store_config, clock_ms=clock)
    try:
        await _migrated_to(store, store_config.database_schema, "0004")
        rows = [
            record_of([ev.sip_joined("call-ringing")]),
            record_of([ev.sip_joined("call-talking"), ev.agent_joined("call-talking")]),
            record_of(ev.whole_call("call-ended")),
            record_of([ev.agent_joined("room-no-call")]),  # never started
        ]
        await store.run_in_transaction(lambda c: c.execute(calls.insert(), rows))
        await store.open()  # migrates to the head
        assert await store.count_in_progress() == 2
        fold_now = lambda events: fold(events, no_agent_seconds=20, now_ms=clock())  # noqa: E731
        # The rows were written without their events: the end folds from the end alone, which
        # started nothing, so it is the stored row's open -> not-started change that counts.
        (ended,) = await store.record([ev.sip_left("call-ringing")], clock(), fold_now)
        assert ended.in_progress == 1

        def downgrade_to_0004(connection: Connection) -> set[str]:
            command.downgrade(_alembic_config(connection), "0004")
            return set(inspect(connection).get_table_names())

        assert "calls_open_count" not in await store.run_in_transaction(downgrade_to_0004)
        await store.run_in_transaction(migrate)
        assert await store.count_in_progress() == 1
    finally:
        await store.close()
