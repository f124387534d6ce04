"""calls.counted_at_ms: when the call was counted in friday_calls_total, under its final
outcome (CallHistory's sweep counts a call once it is decided and its record has settled).
Calls already decided are marked counted: the service that recorded them counted them
when they were decided, and counting them again would page for old calls.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("counted_at_ms", sa.BigInteger, nullable=True))
    op.execute("UPDATE calls SET counted_at_ms = updated_at_ms WHERE outcome <> ''")
    op.create_index("ix_calls_uncounted", "calls", ["counted_at_ms", "updated_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_calls_uncounted", table_name="calls")
    op.drop_column("calls", "counted_at_ms")
