"""calls_open_count: the number of calls in progress (started, not ended), kept in one row
that the transaction starting or ending a call moves by one (`n = n + delta`, atomic across
replicas sharing the database), so the in-progress gauge costs one row however many calls
are open. Counting the open calls on every start and end, even through ix_calls_open, grew
with the calls open at once. The row starts at the open calls already recorded.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls_open_count",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_calls_open_count_one_row"),
    )
    op.execute(
        "INSERT INTO calls_open_count (id, n) SELECT 1, count(*) FROM calls"
        " WHERE started_at_ms IS NOT NULL AND ended_at_ms IS NULL"
    )


def downgrade() -> None:
    op.drop_table("calls_open_count")
