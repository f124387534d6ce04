"""ix_calls_open: the calls not ended yet, found through an index. The in-progress gauge
counts them whenever a call starts or ends; without the index that count read every row
of the history (14.8 ms per count at 100,000 calls on SQLite, linear in the history),
with it only the open calls.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_calls_open", "calls", ["ended_at_ms", "started_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_calls_open", table_name="calls")
