"""The call history's database, behind a small Protocol so the domain logic
(history.py) never imports SQLAlchemy. `SqlCallStore` runs on SQLAlchemy 2 Core, each
operation a plain function of a connection run as one transaction (transactions.py: on
asyncpg for PostgreSQL, on a thread of its own for SQLite).

Recording is one transaction per room: insert the room's events unless their ids are
known, read all the room's events, fold them once, write the call's row (and, when that
starts or ends a call, move the count of calls in progress, a row of its own, by one). A
batch carries a call's events together (the gateway reports a join and its dispatch in
one), and each transaction costs a lock, a read of the room and a fold whatever it
inserts. Two events of one call recorded at once must not each miss the other:
PostgreSQL takes a transaction-scoped advisory lock on the room first (several replicas
may share the database); SQLite has one writer at a time anyway, and one connection and
one thread here, so its transactions run one after another.

The count of calls in progress (calls_open_count) is exact because every change to the
calls rows that opens or closes one moves it in the same transaction, by an atomic
`n = n + delta` (replicas recording different rooms are not serialised by the room lock),
as the transaction's last statement, so its row lock is held for the commit only. Only a
writer past this store moves the rows without the count (an older replica during the
rollout that brings the count's row, a hand edit): the sweep's recount puts it right."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Engine,
    Executable,
    Select,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from friday.calls.v1.call_pb2 import Call, CallEvent, CallEventKind, CallOutcome
from services.calls import errors
from services.calls.config import StoreConfig
from services.calls.migrate import migrate
from services.calls.outbox import OutboxItem, OutboxMessage
from services.calls.records import OUTCOME_LABELS, millis
from services.calls.schema import call_events, call_outbox, calls, calls_open_count
from services.calls.transactions import Operation, T, open_transactions

Fold = Callable[[Sequence[CallEvent]], Call]
# The signed call events a record change makes (outbox.changes), written in the same transaction.
Notices = Callable[[Call | None, Call], list[OutboxMessage]]

# The statements every recorded event runs, built once with their values as bound
# parameters: a statement built per call pays its construction and its cache key each time.
_ROOM_LOCK = select(func.pg_advisory_xact_lock(func.hashtext(bindparam("room", type_=String))))
_EVENT_ROOM = select(call_events.c.room).where(call_events.c.event_id == bindparam("event_id"))
_ROOM_PAYLOADS = select(call_events.c.payload).where(call_events.c.room == bindparam("room"))
_ROOM_RECORD = select(calls.c.record).where(calls.c.room == bindparam("room"))
_INSERT_CALL = insert(calls)
_UPDATE_CALL = update(calls).where(calls.c.room == bindparam("call_room"))
_OPEN_COUNT = select(calls_open_count.c.n).where(calls_open_count.c.id == 1)
_OPEN_ROWS = select(func.count()).where(calls.c.started_at_ms.is_not(None), calls.c.ended_at_ms.is_(None))
# One statement, so one snapshot (also under READ COMMITTED): the row and the rows agree unless
# something wrote calls past the store.
_OPEN_COUNT_AND_ROWS = select(calls_open_count.c.n, _OPEN_ROWS.scalar_subquery()).where(calls_open_count.c.id == 1)
_SET_OPEN_COUNT = update(calls_open_count).where(calls_open_count.c.id == 1).values(n=bindparam("n"))
_MOVE_OPEN_COUNT = (
    update(calls_open_count)
    .where(calls_open_count.c.id == 1)
    .values(n=calls_open_count.c.n + bindparam("delta"))
    .returning(calls_open_count.c.n)
)


# The sweep folds overdue calls again this many to a transaction: one each was a
# transaction's hand-off and commit per call, for a call a busy minute brings by the hundred.
REFOLD_ROOMS_PER_TRANSACTION = 100


@dataclass(frozen=True)
class Recorded:
    """What recording one event did: `before` is None for a call seen the first time.
    `in_progress`: the calls started and not ended, read in the same transaction when
    this change made a row or started or ended a call; None when it did none of these."""

    recorded: bool
    before: Call | None
    after: Call
    in_progress: int | None = None


@dataclass(frozen=True)
class CallQuery:
    start_ms: int | None = None
    end_ms: int | None = None
    dialed_number: str = ""
    persona_id: str = ""
    outcome: str = ""  # an OUTCOME_LABELS value, or "" for any
    limit: int = 50
    # Keyset paging: the (started_at_ms, room) of the last call of the previous page.
    after: tuple[int, str] | None = None


class CallStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record(
        self, events: Sequence[CallEvent], received_at_ms: int, fold: Fold, notices: Notices | None = None
    ) -> list[Recorded]:
        """What recording each event did, in order; each room's events in one transaction."""
        ...

    async def refold(self, rooms: Sequence[str], fold: Fold, notices: Notices | None = None) -> list[Recorded]:
        """Each room's record folded again from its events (the sweep's overdue calls), in order."""
        ...

    async def get_call(self, key: str) -> tuple[Call, list[CallEvent]] | None: ...

    async def list_calls(self, query: CallQuery) -> list[Call]: ...

    async def calls_started_between(self, start_ms: int, end_ms: int) -> list[Call]: ...

    async def undecided_rooms(self, started_by_ms: int) -> list[str]: ...

    async def finalise(self, settled_by_ms: int, now_ms: int, limit: int) -> list[Call]: ...

    async def delete_older_than(self, cutoff_ms: int) -> int: ...

    async def count_in_progress(self) -> int: ...

    async def recount_in_progress(self) -> tuple[int, int]: ...

    async def ping(self) -> bool: ...


def _opens_or_closes(before: Call | None, after: Call) -> bool:
    """Whether a change can move the count of calls in progress."""
    return (
        before is None
        or before.HasField("started_at") != after.HasField("started_at")
        or before.HasField("ended_at") != after.HasField("ended_at")
    )


def _is_open(call: Call | None) -> bool:
    """Whether the call's row counts in calls_open_count: started and not ended."""
    return call is not None and call.HasField("started_at") and not call.HasField("ended_at")


def _row_values(call: Call, now_ms: int) -> dict[str, Any]:
    return {
        "sip_call_id": call.sip_call_id,
        "started_at_ms": millis(call.started_at) if call.HasField("started_at") else None,
        "answered_at_ms": millis(call.answered_at) if call.HasField("answered_at") else None,
        "ended_at_ms": millis(call.ended_at) if call.HasField("ended_at") else None,
        "outcome": OUTCOME_LABELS.get(call.outcome, ""),
        "dialed_number": call.dialed_number,
        "caller_number": call.caller_number,
        "persona_id": call.dispatch.persona_id,
        "persona_version": call.dispatch.persona_version,
        "persona_source": call.dispatch.persona_source,
        "default_reason": call.dispatch.default_reason,
        "dispatch_id": call.dispatch.dispatch_id,
        "answer_seconds": call.answer_seconds if call.HasField("answered_at") else None,
        "duration_seconds": call.duration_seconds if call.HasField("ended_at") else None,
        "updated_at_ms": now_ms,
        "record": call.SerializeToString(deterministic=True),
    }


class SqlCallStore:
    def __init__(self, config: StoreConfig, *, clock_ms: Callable[[], int]) -> None:
        self._config = config
        self._transactions = open_transactions(config)
        self._postgres = self._transactions.sync_engine.dialect.name == "postgresql"
        # Stored once per id: a redelivered event (or one another replica stored first) inserts nothing.
        dialect_insert = postgresql_insert if self._postgres else sqlite_insert
        self._insert_event = dialect_insert(call_events).on_conflict_do_nothing()
        # A change seen again (a refold, an outcome that flips back) never makes a second event.
        self._insert_outbox = dialect_insert(call_outbox).on_conflict_do_nothing()
        self._clock_ms = clock_ms

    @property
    def sync_engine(self) -> Engine:
        """The engine the store's connections come from: its dialect, and its events for tests and the bench."""
        return self._transactions.sync_engine

    async def run_in_transaction(self, operation: Operation[T], *args: object) -> T:
        """`operation(connection, *args)` as one transaction of the store's: how tests and tools
        read and write the tables beside it (on SQLite, the store's one connection holds an
        in-memory database)."""
        return await self._transactions.run(operation, *args)

    async def open(self) -> None:
        """Creates the PostgreSQL schema when one is named, then migrates to the newest revision."""
        try:
            await self._transactions.run(_migrate, self._config.database_schema)
        except (OperationalError, DBAPIError, OSError) as exc:
            raise errors.StoreUnavailable(f"call history database unavailable: {exc}") from exc

    async def close(self) -> None:
        await self._transactions.dispose()

    def _lock_room(self, connection: Connection, room: str) -> None:
        if self._postgres:
            connection.execute(_ROOM_LOCK, {"room": room})

    def _fold_and_write(
        self, connection: Connection, room: str, fold: Fold, recorded: bool, notices: Notices | None
    ) -> Recorded:
        payloads = connection.execute(_ROOM_PAYLOADS, {"room": room}).scalars()
        events = [CallEvent.FromString(p) for p in payloads]
        existing = connection.execute(_ROOM_RECORD, {"room": room}).scalar_one_or_none()
        before = Call.FromString(existing) if existing is not None else None
        after = fold(events)
        values = _row_values(after, self._clock_ms())
        delta = int(_is_open(after)) - int(_is_open(before))
        if before is None:
            connection.execute(_INSERT_CALL, {"room": room, **values})
        elif before != after:
            updated = connection.execute(_UPDATE_CALL, {"call_room": room, **values})
            if updated.rowcount != 1:
                delta = 0  # the row went meanwhile (retention, which counted it out): nothing was written
        if notices is not None and before != after:
            for message in notices(before, after):
                self._enqueue(connection, message)
        in_progress = None
        if delta:
            # Last, so the count's row is locked from here to the commit only.
            in_progress = int(connection.execute(_MOVE_OPEN_COUNT, {"delta": delta}).scalar_one())
        elif _opens_or_closes(before, after):
            in_progress = _open_count(connection)
        return Recorded(recorded=recorded, before=before, after=after, in_progress=in_progress)

    def _enqueue(self, connection: Connection, message: OutboxMessage) -> None:
        now = self._clock_ms()
        values = {
            "idempotency_key": message.idempotency_key,
            "event_type": message.event_type,
            "room": message.room,
            "body": message.body,
            "created_at_ms": now,
            "next_attempt_at_ms": now,
            "attempts": 0,
            "delivered_at_ms": None,
            "last_error": "",
        }
        connection.execute(self._insert_outbox, values)

    async def claim_outbox(self, now_ms: int, lease_ms: int, limit: int) -> list[OutboxItem]:
        """Due rows, oldest first, leased: not offered again until the lease ends."""
        return await self._transactions.run(self._claim_outbox, now_ms, lease_ms, limit)

    def _claim_outbox(self, connection: Connection, now_ms: int, lease_ms: int, limit: int) -> list[OutboxItem]:
        statement = (
            select(call_outbox.c.id, call_outbox.c.idempotency_key, call_outbox.c.body, call_outbox.c.attempts)
            .where(call_outbox.c.delivered_at_ms.is_(None), call_outbox.c.next_attempt_at_ms <= now_ms)
            .order_by(call_outbox.c.id)
            .limit(limit)
        )
        if self._postgres:
            statement = statement.with_for_update(skip_locked=True)  # replicas share the work
        rows = connection.execute(statement).all()
        if rows:
            connection.execute(
                update(call_outbox)
                .where(call_outbox.c.id.in_([row.id for row in rows]))
                .values(next_attempt_at_ms=now_ms + lease_ms)
            )
        return [OutboxItem(row.id, row.idempotency_key, row.body, row.attempts) for row in rows]

    async def outbox_delivered(self, item_id: int, now_ms: int) -> None:
        statement = (
            update(call_outbox)
            .where(call_outbox.c.id == item_id)
            .values(delivered_at_ms=now_ms, attempts=call_outbox.c.attempts + 1, last_error="")
        )
        await self._transactions.run(_execute, statement)

    async def outbox_failed(self, item_id: int, next_attempt_at_ms: int, error: str) -> None:
        statement = (
            update(call_outbox)
            .where(call_outbox.c.id == item_id)
            .values(next_attempt_at_ms=next_attempt_at_ms, attempts=call_outbox.c.attempts + 1, last_error=error)
        )
        await self._transactions.run(_execute, statement)

    async def record(
        self, events: Sequence[CallEvent], received_at_ms: int, fold: Fold, notices: Notices | None = None
    ) -> list[Recorded]:
        by_room: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_room.setdefault(event.room, []).append(index)
        results: dict[int, Recorded] = {}
        for room, indexes in by_room.items():
            room_events = [events[index] for index in indexes]
            recorded = await self._transactions.run(self._record_room, room, room_events, received_at_ms, fold, notices)
            results.update(zip(indexes, recorded, strict=True))
        return [results[index] for index in range(len(events))]

    def _record_room(
        self,
        connection: Connection,
        room: str,
        events: Sequence[CallEvent],
        received_at_ms: int,
        fold: Fold,
        notices: Notices | None,
    ) -> list[Recorded]:
        self._lock_room(connection, room)
        # (the room the event's record is in, whether this inserted it), one per event
        stored = [self._store_event(connection, event, received_at_ms) for event in events]
        folded: dict[str, Recorded] = {}
        for target, _ in stored:
            if target not in folded:
                inserted = any(new for other, new in stored if other == target)
                folded[target] = self._fold_and_write(connection, target, fold, inserted, notices)
        return [replace(folded[target], recorded=new) for target, new in stored]

    def _store_event(self, connection: Connection, event: CallEvent, received_at_ms: int) -> tuple[str, bool]:
        inserted = connection.execute(
            self._insert_event,
            {
                "event_id": event.event_id,
                "room": event.room,
                "kind": CallEventKind.Name(event.kind),
                "occurred_at_ms": millis(event.occurred_at),
                "received_at_ms": received_at_ms,
                "payload": event.SerializeToString(deterministic=True),
            },
        )
        if inserted.rowcount == 1:
            return event.room, True
        # Known already, perhaps under another room (stored meanwhile under that room's lock):
        # the record to fold again is the stored event's.
        known = connection.execute(_EVENT_ROOM, {"event_id": event.event_id}).scalar_one_or_none()
        if known is not None and known != event.room:
            # That room's own lock too: a fold of it racing this one would start from the same
            # row and move the count of calls in progress twice for one change.
            self._lock_room(connection, known)
        return (known if known is not None else event.room), False

    async def refold(self, rooms: Sequence[str], fold: Fold, notices: Notices | None = None) -> list[Recorded]:
        results: list[Recorded] = []
        for start in range(0, len(rooms), REFOLD_ROOMS_PER_TRANSACTION):
            chunk = rooms[start : start + REFOLD_ROOMS_PER_TRANSACTION]
            results += await self._transactions.run(self._refold, chunk, fold, notices)
        return results

    def _refold(
        self, connection: Connection, rooms: Sequence[str], fold: Fold, notices: Notices | None
    ) -> list[Recorded]:
        # Sorted: two replicas' sweeps over overlapping rooms take the locks in one order.
        for room in sorted(set(rooms)):
            self._lock_room(connection, room)
        return [self._fold_and_write(connection, room, fold, False, notices) for room in rooms]

    async def get_call(self, key: str) -> tuple[Call, list[CallEvent]] | None:
        return await self._transactions.run(_get_call, key)

    async def list_calls(self, query: CallQuery) -> list[Call]:
        conditions: list[ColumnElement[bool]] = [calls.c.started_at_ms.is_not(None)]
        if query.start_ms is not None:
            conditions.append(calls.c.started_at_ms >= query.start_ms)
        if query.end_ms is not None:
            conditions.append(calls.c.started_at_ms < query.end_ms)
        if query.dialed_number:
            conditions.append(calls.c.dialed_number == query.dialed_number)
        if query.persona_id:
            conditions.append(calls.c.persona_id == query.persona_id)
        if query.outcome:
            conditions.append(calls.c.outcome == query.outcome)
        if query.after is not None:
            started, room = query.after
            conditions.append(
                or_(calls.c.started_at_ms < started, and_(calls.c.started_at_ms == started, calls.c.room < room))
            )
        statement = (
            select(calls.c.record)
            .where(*conditions)
            .order_by(calls.c.started_at_ms.desc(), calls.c.room.desc())
            .limit(query.limit)
        )
        return await self._transactions.run(_records, statement)

    async def calls_started_between(self, start_ms: int, end_ms: int) -> list[Call]:
        statement = select(calls.c.record).where(calls.c.started_at_ms >= start_ms, calls.c.started_at_ms < end_ms)
        return await self._transactions.run(_records, statement)

    async def undecided_rooms(self, started_by_ms: int) -> list[str]:
        statement = select(calls.c.room).where(
            calls.c.outcome == OUTCOME_LABELS.get(CallOutcome.CALL_OUTCOME_UNSPECIFIED, ""),
            calls.c.started_at_ms.is_not(None),
            calls.c.started_at_ms <= started_by_ms,
        )
        return await self._transactions.run(_scalars, statement)

    async def finalise(self, settled_by_ms: int, now_ms: int, limit: int) -> list[Call]:
        """Marks counted, and answers, up to `limit` calls that are decided, were not counted yet
        and have not changed since `settled_by_ms` (ended or not). Each call is answered once, to
        one caller: on PostgreSQL, replicas sweeping at once skip each other's rows."""
        return await self._transactions.run(self._finalise, settled_by_ms, now_ms, limit)

    def _finalise(self, connection: Connection, settled_by_ms: int, now_ms: int, limit: int) -> list[Call]:
        statement = (
            select(calls.c.room, calls.c.record)
            .where(
                calls.c.counted_at_ms.is_(None),
                calls.c.outcome != "",
                calls.c.updated_at_ms <= settled_by_ms,
            )
            .order_by(calls.c.updated_at_ms)
            .limit(limit)
        )
        if self._postgres:
            statement = statement.with_for_update(skip_locked=True)
        rows = connection.execute(statement).all()
        if rows:
            connection.execute(
                update(calls).where(calls.c.room.in_([row.room for row in rows])).values(counted_at_ms=now_ms)
            )
        return [Call.FromString(row.record) for row in rows]

    async def delete_older_than(self, cutoff_ms: int) -> int:
        """Calls that started before the cutoff, and events received before it."""
        return await self._transactions.run(_delete_older_than, cutoff_ms)

    async def count_in_progress(self) -> int:
        return await self._transactions.run(_open_count)

    async def recount_in_progress(self) -> tuple[int, int]:
        """Counts the open calls rows (through ix_calls_open) and sets the count's row to that
        if it differs: (the row's value, the rows counted)."""
        counted, rows = await self._transactions.run(_open_count_and_rows)
        if counted == rows:
            return counted, rows
        return await self._transactions.run(self._recount_in_progress)

    def _recount_in_progress(self, connection: Connection) -> tuple[int, int]:
        if self._postgres:
            # Every change that moves the count holds its row until it commits: with the row
            # held here, the count below sees each such change committed, or not yet moved.
            counted = int(connection.execute(_OPEN_COUNT.with_for_update()).scalar_one())
        else:
            counted = _open_count(connection)
        rows = int(connection.execute(_OPEN_ROWS).scalar_one())
        if counted != rows:
            connection.execute(_SET_OPEN_COUNT, {"n": rows})
        return counted, rows

    async def ping(self) -> bool:
        try:
            await self._transactions.run(_execute, select(1))
            return True
        except (errors.StoreUnavailable, DBAPIError):
            return False


# The operations that need nothing of the store's own: functions of a connection.


def _migrate(connection: Connection, schema: str) -> None:
    migrate(connection, schema=schema)


def _execute(connection: Connection, statement: Executable) -> None:
    connection.execute(statement)


def _records(connection: Connection, statement: Select[Any]) -> list[Call]:
    return [Call.FromString(p) for p in connection.execute(statement).scalars()]


def _scalars(connection: Connection, statement: Select[Any]) -> list[str]:
    return list(connection.execute(statement).scalars())


def _open_count(connection: Connection) -> int:
    return int(connection.execute(_OPEN_COUNT).scalar_one())


def _open_count_and_rows(connection: Connection) -> tuple[int, int]:
    counted, rows = connection.execute(_OPEN_COUNT_AND_ROWS).one()
    return int(counted), int(rows)


def _get_call(connection: Connection, key: str) -> tuple[Call, list[CallEvent]] | None:
    row = connection.execute(
        select(calls.c.room, calls.c.record)
        .where(or_(calls.c.room == key, calls.c.sip_call_id == key), calls.c.started_at_ms.is_not(None))
        .order_by(calls.c.started_at_ms.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    payloads = connection.execute(
        select(call_events.c.payload)
        .where(call_events.c.room == row.room)
        .order_by(call_events.c.occurred_at_ms, call_events.c.event_id)
    ).scalars()
    return Call.FromString(row.record), [CallEvent.FromString(p) for p in payloads]


def _delete_older_than(connection: Connection, cutoff_ms: int) -> int:
    old_rooms = select(calls.c.room).where(calls.c.started_at_ms < cutoff_ms)
    connection.execute(delete(call_events).where(call_events.c.room.in_(old_rooms)))
    # The open ones first, by a statement of their own: its row count is how many calls in
    # progress go (on PostgreSQL it re-checks a row another transaction ended meanwhile).
    old_open = connection.execute(delete(calls).where(calls.c.started_at_ms < cutoff_ms, calls.c.ended_at_ms.is_(None)))
    result = connection.execute(delete(calls).where(calls.c.started_at_ms < cutoff_ms))
    connection.execute(delete(call_events).where(call_events.c.received_at_ms < cutoff_ms))
    connection.execute(delete(call_outbox).where(call_outbox.c.created_at_ms < cutoff_ms))
    # Rooms whose events are all gone (never a call: no SIP join) lose their empty row too.
    connection.execute(delete(calls).where(calls.c.started_at_ms.is_(None), calls.c.updated_at_ms < cutoff_ms))
    gone_open = int(old_open.rowcount or 0)
    if gone_open:  # last, as in recording: the count's row is locked to the commit only
        connection.execute(_MOVE_OPEN_COUNT, {"delta": -gone_open})
    return gone_open + int(result.rowcount or 0)
