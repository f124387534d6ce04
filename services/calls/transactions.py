"""Where the call history's transactions run. The store's operations are plain
functions over a SQLAlchemy `Connection`, one call per transaction, and this module
runs each one on its database's terms:

- PostgreSQL (asyncpg): on the event loop, through `AsyncConnection.run_sync`, each
  statement a network round trip awaited like any other I/O.
- SQLite (the standard library's sqlite3): on one thread of its own, the whole
  transaction in one hand-off. SQLite is a library, not a server: its statements are
  calls that block, and an asyncio driver (aiosqlite) hands every cursor operation to a
  thread and back, 18 round trips through two queues for one recorded event, each a
  wake-up of both threads. One thread also serialises the one connection, which an
  in-memory database lives in and SQLite allows one writer on anyway."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from services.calls import errors
from services.calls.config import SCHEMA_NAME, StoreConfig, driver_url

T = TypeVar("T")
# A function of a connection and the arguments that follow it.
Operation = Callable[..., T]


class Transactions(Protocol):
    @property
    def sync_engine(self) -> Engine:
        """The engine the operations' connections come from (its dialect, its events)."""
        ...

    async def run(self, operation: Operation[T], *args: Any) -> T:
        """`operation(connection, *args)` in one transaction, committed when it returns;
        a database that cannot be reached raises StoreUnavailable."""
        ...

    async def dispose(self) -> None: ...


def open_transactions(config: StoreConfig) -> Transactions:
    url = driver_url(config.database_url)
    if url.startswith("sqlite"):
        return SqliteTransactions(url)
    if config.database_schema and not SCHEMA_NAME.match(config.database_schema):
        raise ValueError(f"database schema {config.database_schema!r} is not a plain SQL name")
    return AsyncDriverTransactions(url, schema=config.database_schema)


# PostgreSQL aborted the transaction to break a cycle of waits on locks (rooms' advisory
# locks taken in different orders: a record whose event id is stored under another room,
# beside a sweep): it was rolled back, and the other transaction went on.
_DEADLOCK_DETECTED = "40P01"


class _NotCommitted(Exception):
    """The transaction was rolled back before COMMIT was sent (its connection lost, or
    PostgreSQL chose it to break a deadlock): it did nothing, so it may run again."""

    def __init__(self, lost: DBAPIError) -> None:
        super().__init__(str(lost))
        self.lost = lost


def _unavailable(exc: Exception) -> errors.StoreUnavailable:
    return errors.StoreUnavailable(f"call history database unavailable: {exc}")


class AsyncDriverTransactions:
    """No pre-ping: it is a round trip before every transaction, about a fifth of a
    recorded event's CPU. A pooled connection the server has closed (a restart, an idle
    timeout) fails its first statement instead; SQLAlchemy then invalidates the pool, and
    the transaction runs once more on a new connection. Only a failure before COMMIT is
    sent is run again: nothing of that transaction can be in the database. A transaction
    PostgreSQL aborted to break a deadlock runs once more too. A failure of the COMMIT
    itself may have committed, so it is the caller's StoreUnavailable."""

    def __init__(self, url: str, *, schema: str = "") -> None:
        connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}} if schema else {}
        self._engine: AsyncEngine = create_async_engine(url, connect_args=connect_args)

    @property
    def sync_engine(self) -> Engine:
        return self._engine.sync_engine

    async def run(self, operation: Operation[T], *args: Any) -> T:
        try:
            try:
                return await self._transaction(operation, args)
            except _NotCommitted:
                return await self._transaction(operation, args)
        except _NotCommitted as exc:
            raise _unavailable(exc.lost) from exc
        except DBAPIError as exc:
            # A connection lost at COMMIT (asyncpg says InterfaceError, not OperationalError)
            # is the database being unreachable too, not a bug to answer UNKNOWN.
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                raise _unavailable(exc) from exc
            raise
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def _transaction(self, operation: Operation[T], args: tuple[Any, ...]) -> T:
        async with self._engine.connect() as connection:
            try:
                result = await connection.run_sync(operation, *args)
            except DBAPIError as exc:
                if exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) == _DEADLOCK_DETECTED:
                    raise _NotCommitted(exc) from exc
                raise
            await connection.commit()
            return result

    async def dispose(self) -> None:
        await self._engine.dispose()


class SqliteTransactions:
    def __init__(self, url: str) -> None:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection for the process, made and used on the one thread below only.
        self._engine = create_sync_engine(url, poolclass=StaticPool, connect_args={"timeout": 30})
        event.listen(self._engine, "connect", _sqlite_pragmas)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="calls-sqlite")

    @property
    def sync_engine(self) -> Engine:
        return self._engine

    async def run(self, operation: Operation[T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._in_transaction, operation, *args)

    def _in_transaction(self, operation: Callable[..., T], *args: Any) -> T:
        try:
            with self._engine.begin() as connection:
                return operation(connection, *args)
        except (OperationalError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def dispose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: `friday calls list` can read while the service writes; NORMAL: a commit costs no
    # fsync in WAL mode, and a crash loses at most the last commits, never the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
