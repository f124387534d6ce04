"""Brings the database to the newest schema with Alembic, in-process, at start-up: a
fresh database gets the tables, an older one its missing migrations, a current one
nothing. Alembic's version table has a name of its own so the call history can share a
database (or schema) with other tools' Alembic histories.

Replicas sharing one PostgreSQL all migrate when they start, often at the same moment (a
rollout): each takes one transaction-scoped advisory lock first, so they take turns and
the later ones find the schema current, instead of racing `CREATE TABLE`s."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

VERSION_TABLE = "calls_alembic_version"
# The advisory lock's key: any constant no other tool on the database takes; this one is
# the first 8 bytes of sha256("friday calls migrations"), as a signed 64-bit integer.
MIGRATION_LOCK_KEY = -4_675_040_637_449_547_800
SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    assert head is not None
    return head


def migrate(connection: Connection, *, schema: str = "") -> None:
    """Creates `schema` when one is named (PostgreSQL), then upgrades to the head revision, in
    the caller's transaction (the store runs it as one), holding the migration lock on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        if schema:
            # A plain name, checked by the config; quoted for its case.
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    _upgrade(connection)
