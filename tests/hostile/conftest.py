"""Hostile-input tests run against the gateway tests' mesh (tests/webhook_gateway/conftest.py,
services/testing/mesh.py): real PersonaService and DispatcherService, CRM and LiveKit
stand-ins, the gateway in front. One mesh per test; hypothesis examples share it."""

from __future__ import annotations

from tests.hostile.logs import error_records  # noqa: F401  (re-exported for the test modules)
from tests.webhook_gateway.conftest import mesh  # noqa: F401  (the fixture, reused)
