"""Shared fixtures. Keep this small: fixtures specific to one area live next to its tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.common import grpc_polling

# Tests run gRPC on the engine the services run on (services/cli sets the same before grpc loads).
grpc_polling.prefer_legacy_epoll()

import pytest  # noqa: E402

from services.testing.crm import CrmStandIn  # noqa: E402
from services.testing.livekit_api import LiveKitStandIn  # noqa: E402


@pytest.fixture
async def crm() -> AsyncIterator[CrmStandIn]:
    """A running CRM stand-in in the test's event loop; ``crm.base_url`` is PERSONA_API_BASE."""
    async with CrmStandIn() as standin:
        yield standin


@pytest.fixture
async def livekit() -> AsyncIterator[LiveKitStandIn]:
    """A running LiveKit API stand-in; ``livekit.url/api_key/api_secret`` configure a client."""
    async with LiveKitStandIn() as standin:
        yield standin
