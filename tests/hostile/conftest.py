"""Hostile-input tests run against the gateway test mesh (tests/webhook_gateway/conftest.py):
real PersonaService and DispatcherService on port 0, CRM and LiveKit stand-ins, the
gateway in front. One mesh per test; hypothesis examples share it."""

from __future__ import annotations

import logging

import pytest

from tests.webhook_gateway.conftest import mesh  # noqa: F401  (the fixture, reused)


def error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR (or worse) log records and anything carrying a traceback: each one is a failure."""
    return [
        f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info is not None
    ]
