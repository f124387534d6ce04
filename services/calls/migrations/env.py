"""Alembic's environment: always run in-process by services/calls/migrate.py on a
connection it hands over (there is no alembic.ini and no URL here)."""

from __future__ import annotations

from alembic import context

from services.calls.migrate import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
