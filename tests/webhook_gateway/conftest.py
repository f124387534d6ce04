"""The whole call path on real sockets: CRM stand-in → PersonaService, LiveKit
stand-in → DispatcherService, and the gateway in front, all on port 0."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from services.dispatcher.config import ClaimConfig, DispatcherConfig, LiveKitConfig, RetryConfig
from services.dispatcher.server import build_server as build_dispatcher
from services.grpc_runtime import GrpcServer, ServerConfig
from services.persona.config import PersonaConfig
from services.persona.server import build_server as build_persona
from services.testing.crm import CrmStandIn
from services.testing.livekit_api import LiveKitStandIn
from services.testing.livekit_webhooks import signed_request
from services.webhook_gateway.config import GatewayConfig
from services.webhook_gateway.server import start as start_gateway

# LiveKit signs webhooks with the same key pair the dispatcher uses for the API.
WEBHOOK_KEY = "APIwebhookkey"
WEBHOOK_SECRET = "webhook-secret-that-is-at-least-32-bytes-long"
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


@dataclasses.dataclass
class Mesh:
    crm: CrmStandIn
    livekit: LiveKitStandIn
    persona: GrpcServer
    dispatcher: GrpcServer
    gateway_url: str
    http: httpx.AsyncClient
    dispatcher_config: DispatcherConfig
    persona_config: PersonaConfig

    async def deliver(self, event, **sign_kwargs) -> httpx.Response:
        body, headers = signed_request(event, WEBHOOK_KEY, WEBHOOK_SECRET, **sign_kwargs)
        return await self.post(body, headers)

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(f"{self.gateway_url}/livekit-webhook", content=body, headers=headers)

    async def restart_persona(self) -> None:
        port = self.persona.port
        self.persona = build_persona(self.persona_config, ServerConfig(host="127.0.0.1", port=port))
        await self.persona.start()

    async def restart_dispatcher(self) -> None:
        port = self.dispatcher.port
        self.dispatcher = build_dispatcher(self.dispatcher_config, ServerConfig(host="127.0.0.1", port=port))
        await self.dispatcher.start()


@pytest.fixture
async def mesh(crm: CrmStandIn, livekit: LiveKitStandIn) -> AsyncIterator[Mesh]:
    crm.set_persona(CRM_SEGMENT, CRM_PERSONA)
    persona_config = PersonaConfig(
        api_base=crm.base_url, crm_max_attempts=2, crm_backoff_initial_seconds=0.01, crm_probe_interval_seconds=0
    )
    dispatcher_config = DispatcherConfig(
        livekit=LiveKitConfig(livekit.url, livekit.api_key, livekit.api_secret),
        retry=RetryConfig(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=1.0),
        claims=ClaimConfig(redis_url=None),
    )
    persona = build_persona(persona_config, ServerConfig(host="127.0.0.1", port=0))
    dispatcher = build_dispatcher(dispatcher_config, ServerConfig(host="127.0.0.1", port=0))
    async with AsyncExitStack() as stack:
        await persona.start()
        await dispatcher.start()
        gateway_config = GatewayConfig(
            host="127.0.0.1",
            port=0,
            webhook_api_key=WEBHOOK_KEY,
            webhook_api_secret=WEBHOOK_SECRET,
            persona_target=f"127.0.0.1:{persona.port}",
            dispatcher_target=f"127.0.0.1:{dispatcher.port}",
            persona_timeout_seconds=0.5,
            budget_seconds=2.0,
            max_body_bytes=64 * 1024,
        )
        gateway_url = await stack.enter_async_context(start_gateway(gateway_config))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        running = Mesh(crm, livekit, persona, dispatcher, gateway_url, http, dispatcher_config, persona_config)
        try:
            yield running
        finally:
            await running.persona.stop(grace=0)
            await running.dispatcher.stop(grace=0)
