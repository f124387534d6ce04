"""Alembic migrations of the call history tables, run at start-up (services/calls/migrate.py)."""
