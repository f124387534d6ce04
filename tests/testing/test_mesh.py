"""The in-process mesh runs the services with their production defaults unless an
option says otherwise, and every part comes back on its port after a stop."""

from __future__ import annotations

from services.dispatcher.config import RetryConfig
from services.persona.config import PersonaConfig
from services.testing.livekit_webhooks import sip_participant_joined
from services.testing.mesh import Mesh
from services.testing.mesh_options import MeshOptions
from services.webhook_gateway.config import GatewayConfig

DIALED = "+918655701159"
CRM_SEGMENT = "8655701159"
PERSONA = {"persona_id": "crm-mesh", "persona_name": "Mesh", "personality": "You are the mesh's persona."}


def test_settings_are_production_defaults_unless_an_option_is_set() -> None:
    default = Mesh()
    persona, gateway = default.persona_config, default.gateway_config
    assert persona.cache.ttl_seconds == PersonaConfig().cache.ttl_seconds
    assert persona.crm.max_attempts == PersonaConfig().crm.max_attempts
    assert default.dispatcher_config.retry == RetryConfig()
    assert gateway.budget_seconds == GatewayConfig().budget_seconds
    assert gateway.max_body_bytes == GatewayConfig().max_body_bytes
    assert persona.cache.redis_url is None and gateway.redis_url is None

    fast = RetryConfig(max_attempts=2, initial_backoff=0.01)
    tuned = Mesh(
        MeshOptions(
            persona_cache_ttl_seconds=0.5,
            crm_max_attempts=1,
            livekit_retry=fast,
            gateway_budget_seconds=1.5,
            gateway_max_body_bytes=1024,
        )
    )
    assert tuned.persona_config.cache.ttl_seconds == 0.5
    assert tuned.persona_config.crm.max_attempts == 1
    assert tuned.persona_config.crm.backoff_initial_seconds == PersonaConfig().crm.backoff_initial_seconds
    assert tuned.dispatcher_config.retry == fast
    assert tuned.gateway_config.budget_seconds == 1.5
    assert tuned.gateway_config.max_body_bytes == 1024
    assert tuned.gateway_config.persona_timeout_seconds == GatewayConfig().persona_timeout_seconds


async def test_every_part_stops_and_starts_again_on_the_same_port() -> None:
    async with Mesh() as mesh:
        mesh.crm.set_persona(CRM_SEGMENT, PERSONA)
        first = await mesh.deliver(sip_participant_joined(room="call-before", dialed_number=DIALED))
        assert first.status_code == 200, first.text
        assert first.json()["persona_id"] == "crm-mesh"
        assert mesh.persona is not None and mesh.dispatcher is not None
        before = (mesh.gateway_url, mesh.crm.base_url, mesh.persona.port, mesh.dispatcher.port)

        await mesh.stop_gateway()
        await mesh.stop_dispatcher()
        await mesh.stop_persona()
        await mesh.stop_crm()
        assert mesh.persona is None and mesh.dispatcher is None
        await mesh.start_crm()
        await mesh.start_persona()
        await mesh.start_dispatcher()
        await mesh.start_gateway()

        after = (mesh.gateway_url, mesh.crm.base_url, mesh.persona.port, mesh.dispatcher.port)
        assert after == before
        again = await mesh.deliver(sip_participant_joined(room="call-after", dialed_number=DIALED))
        assert again.status_code == 200, again.text
        assert again.json()["persona_id"] == "crm-mesh"
        assert mesh.crm.requests_for(CRM_SEGMENT) == 2  # the new PersonaService starts with an empty cache
        assert [len(mesh.livekit.dispatches(room)) for room in ("call-before", "call-after")] == [1, 1]
