"""The gateway authenticates to both services with their tokens when they require one."""

from __future__ import annotations

import grpc
import pytest

from services.grpc_runtime import ServerConfig
from services.persona.config import PersonaConfig
from services.persona.server import build_server as build_persona
from services.webhook_gateway.config import GatewayConfig
from services.webhook_gateway.errors import UpstreamError
from services.webhook_gateway.upstreams import GrpcPersonaLookup, upstream_channel

TOKEN = "persona-token-0123456789abcdef"


def test_tokens_come_from_the_services_own_variables() -> None:
    config = GatewayConfig.from_env({"PERSONA_TOKEN": "persona-secret-1", "DISPATCHER_TOKEN": "dispatcher-secret-2"})
    assert (config.persona_token, config.dispatcher_token) == ("persona-secret-1", "dispatcher-secret-2")
    assert "persona-secret-1" not in repr(config) and "dispatcher-secret-2" not in repr(config)


async def test_persona_lookup_sends_the_persona_token() -> None:
    server = build_persona(PersonaConfig(), ServerConfig(host="127.0.0.1", port=0, auth_token=TOKEN))
    await server.start()
    try:
        async with upstream_channel(server.address, None) as channel:
            found = await GrpcPersonaLookup(channel, TOKEN).get_persona(
                "+918655701159", caller_number="", timeout=5, trace_id="EV_1"
            )
            assert found.persona.persona_id == "xeny-reception"
            with pytest.raises(UpstreamError) as refused:
                await GrpcPersonaLookup(channel).get_persona(
                    "+918655701159", caller_number="", timeout=5, trace_id="EV_2"
                )
            assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED.name
    finally:
        await server.stop(grace=0)
