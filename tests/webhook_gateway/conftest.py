"""The whole call path on real sockets (services.testing.mesh): CRM stand-in →
PersonaService, LiveKit stand-in → DispatcherService, and the gateway in front."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.dispatcher.config import RetryConfig
from services.testing.mesh import Mesh
from services.testing.mesh_options import MeshOptions

DIALED = "+918655701159"
CRM_SEGMENT = "8655701159"  # PersonaService's default CRM number format: national digits
CRM_PERSONA = {
    "persona_id": "xeny-crm",
    "persona_name": "Asha (CRM)",
    "personality": "You are Asha from the CRM.",
    "conversationStructure": "Greet, help, close.",
    "welcome_message": "Namaste from the CRM",
    "closing_message": "Bye from the CRM",
}
# Fast retries and short budgets keep the failure tests quick; a small cap on webhook bodies.
OPTIONS = MeshOptions(
    crm_max_attempts=2,
    crm_backoff_initial_seconds=0.01,
    livekit_retry=RetryConfig(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=1.0),
    gateway_persona_timeout_seconds=0.5,
    gateway_budget_seconds=2.0,
    gateway_max_body_bytes=64 * 1024,
    # A gone room's cancelled listing then ends in a second, not LiveKit's 15 s.
    livekit_missing_room_delay_seconds=1.0,
)


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    async with Mesh(OPTIONS) as running:
        running.crm.set_persona(CRM_SEGMENT, CRM_PERSONA)
        yield running
