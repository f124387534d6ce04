"""The call history tables: call_events (one row per event id) and calls (one per room).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_events",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("room", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("occurred_at_ms", sa.BigInteger, nullable=False),
        sa.Column("received_at_ms", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_call_events_room", "call_events", ["room"])
    op.create_index("ix_call_events_received", "call_events", ["received_at_ms"])
    op.create_table(
        "calls",
        sa.Column("room", sa.String(256), primary_key=True),
        sa.Column("sip_call_id", sa.String(200), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=True),
        sa.Column("answered_at_ms", sa.BigInteger, nullable=True),
        sa.Column("ended_at_ms", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("dialed_number", sa.String(64), nullable=False),
        sa.Column("caller_number", sa.String(64), nullable=False),
        sa.Column("persona_id", sa.String(200), nullable=False),
        sa.Column("persona_version", sa.String(200), nullable=False),
        sa.Column("persona_source", sa.String(64), nullable=False),
        sa.Column("default_reason", sa.Text, nullable=False),
        sa.Column("dispatch_id", sa.String(200), nullable=False),
        sa.Column("answer_seconds", sa.Float, nullable=True),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_calls_started", "calls", ["started_at_ms"])
    op.create_index("ix_calls_sip_call_id", "calls", ["sip_call_id"])
    op.create_index("ix_calls_outcome_started", "calls", ["outcome", "started_at_ms"])


def downgrade() -> None:
    op.drop_table("calls")
    op.drop_table("call_events")
