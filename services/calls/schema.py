"""The tables, as SQLAlchemy Core sees them. Alembic's migrations (migrations/versions/)
create them; this module only describes them for queries, so a change here needs a
new migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text

metadata = MetaData()

# Every event recorded, once per event id: the facts a call's record is folded from.
call_events = Table(
    "call_events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("room", String(256), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("occurred_at_ms", BigInteger, nullable=False),
    # The recorder's clock: what retention goes by (an event's own time may be anything).
    Column("received_at_ms", BigInteger, nullable=False),
    # The CallEvent, serialised (caller number already masked when it must be).
    Column("payload", LargeBinary, nullable=False),
    Index("ix_call_events_room", "room"),
    Index("ix_call_events_received", "received_at_ms"),
)

# One row per call, rebuilt from its events on every new event. The columns serve queries
# and people reading the database; `record` holds the whole Call message.
calls = Table(
    "calls",
    metadata,
    Column("room", String(256), primary_key=True),
    Column("sip_call_id", String(200), nullable=False, default=""),
    Column("started_at_ms", BigInteger, nullable=True),
    Column("answered_at_ms", BigInteger, nullable=True),
    Column("ended_at_ms", BigInteger, nullable=True),
    Column("outcome", String(32), nullable=False, default=""),
    Column("dialed_number", String(64), nullable=False, default=""),
    Column("caller_number", String(64), nullable=False, default=""),
    Column("persona_id", String(200), nullable=False, default=""),
    Column("persona_version", String(200), nullable=False, default=""),
    Column("persona_source", String(64), nullable=False, default=""),
    Column("default_reason", Text, nullable=False, default=""),
    Column("dispatch_id", String(200), nullable=False, default=""),
    Column("answer_seconds", Float, nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("record", LargeBinary, nullable=False),
    # When friday_calls_total counted the call (once, under its final outcome); NULL: not yet.
    Column("counted_at_ms", BigInteger, nullable=True),
    Index("ix_calls_started", "started_at_ms"),
    Index("ix_calls_sip_call_id", "sip_call_id"),
    Index("ix_calls_outcome_started", "outcome", "started_at_ms"),
    Index("ix_calls_uncounted", "counted_at_ms", "updated_at_ms"),
    # The open calls (ended_at_ms IS NULL), which migration 0005 and the sweep count calls_open_count from.
    Index("ix_calls_open", "ended_at_ms", "started_at_ms"),
)

# One row (id 1): how many calls rows are open (started_at_ms set, ended_at_ms not), moved by
# the transaction that opens or closes one, so the in-progress gauge never counts the rows.
calls_open_count = Table(
    "calls_open_count",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger, nullable=False),
)

# Signed call events waiting for (or done with) delivery to CALL_EVENTS_URL. Rows are written in
# the transaction that changes the call, so an event exists exactly when its change does.
call_outbox = Table(
    "call_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # room + event type: one call.started, one call.answered, one call.ended per call, ever.
    Column("idempotency_key", String(400), nullable=False, unique=True),
    Column("event_type", String(32), nullable=False),
    Column("room", String(256), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("next_attempt_at_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("delivered_at_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=False),
    Index("ix_call_outbox_due", "delivered_at_ms", "next_attempt_at_ms"),
)
