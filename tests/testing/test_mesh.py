"""The in-process mesh runs the services with their production defaults unless an
option says otherwise, and every part comes back on its port after a stop."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from livekit.protocol.agent import JobStatus

from friday.calls.v1.call_pb2 import Call, CallOutcome
from services.calls.client import CallsCallError, CallsClient
from services.common.livekit_names import DEFAULT_AGENT_NAME
from services.dispatcher.config import RetryConfig
from services.persona.config import PersonaConfig
from services.testing.agent_workers import JobOutcome, ScriptedBehaviour
from services.testing.livekit_webhooks import (
    agent_participant_joined,
    room_finished,
    sip_participant_joined,
    sip_participant_left,
)
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
        assert mesh.persona.server is not None and mesh.dispatcher.server is not None
        before = (mesh.gateway_url, mesh.crm.base_url, mesh.persona.port, mesh.dispatcher.port)

        await mesh.stop_gateway()
        await mesh.stop_dispatcher()
        await mesh.stop_persona()
        await mesh.stop_crm()
        assert mesh.persona.server is None and mesh.dispatcher.server is None
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


async def test_livekit_has_a_worker_for_the_gateways_agent_name_and_deliver_puts_the_room_in_first() -> None:
    async with Mesh() as mesh:
        agent_name = mesh.gateway_config.agent_name
        (worker,) = mesh.livekit.workers.workers()
        assert worker.agent_name == agent_name == DEFAULT_AGENT_NAME
        assert not mesh.livekit.has_room("call-worker")
        response = await mesh.deliver(sip_participant_joined(room="call-worker", dialed_number=DIALED))
        assert response.status_code == 200, response.text
        assert mesh.livekit.has_room("call-worker")
        await mesh.livekit.settle()
        (dispatch,) = mesh.livekit.dispatches("call-worker")
        (job,) = dispatch.state.jobs
        assert (job.state.status, job.state.worker_id) == (JobStatus.JS_RUNNING, worker.id)
        assert mesh.livekit.agents("call-worker") == [job.state.participant_identity]


async def test_the_worker_options_choose_its_answer_and_delay_or_no_worker_at_all() -> None:
    slow_failing = MeshOptions(livekit_worker=JobOutcome.FAILS, livekit_worker_accept_delay_seconds=0.2)
    async with Mesh(slow_failing) as mesh:
        (worker,) = mesh.livekit.workers.workers()
        assert worker.behaviour == ScriptedBehaviour(accept_delay=0.2, outcome=JobOutcome.FAILS)
    async with Mesh(MeshOptions(livekit_worker=None)) as mesh:
        assert mesh.livekit.workers.workers() == []
        response = await mesh.deliver(sip_participant_joined(room="call-nobody", dialed_number=DIALED))
        # A dispatch is not an agent: with no worker, the mesh refuses (LiveKit redelivers) and
        # withdraws the dispatch LiveKit would otherwise keep without a job.
        assert response.status_code == 503, response.text
        await mesh.livekit.settle()
        assert mesh.livekit.dispatches("call-nobody") == []


@pytest.mark.parametrize("as_process", [False, True], ids=["in_process", "as_process"])
async def test_with_call_history_the_gateway_reports_each_call_to_a_real_call_history_service(
    as_process: bool,
) -> None:
    async with Mesh() as plain:
        assert plain.calls.server is None and plain.calls_target is None
        assert plain.gateway_config.call_reporting.target is None
    async with Mesh(MeshOptions(call_history=True, calls_process=as_process)) as mesh:
        mesh.crm.set_persona(CRM_SEGMENT, PERSONA)
        server = mesh.calls.process if as_process else mesh.calls.server
        assert server is not None and mesh.calls_target == f"127.0.0.1:{server.port}"
        assert mesh.gateway_config.call_reporting.target == mesh.calls_target
        joined = sip_participant_joined(room="call-recorded", dialed_number=DIALED)
        response = await mesh.deliver(joined)
        assert response.status_code == 200, response.text
        (identity,) = mesh.livekit.agents("call-recorded")
        agent_ms = joined.participant.joined_at_ms + 1500
        for event in (
            agent_participant_joined(room="call-recorded", joined_at_ms=agent_ms, identity=identity),
            sip_participant_left(joined, created_at=joined.created_at + 30),
            room_finished(room="call-recorded", created_at=joined.created_at + 31),
        ):
            assert (await mesh.deliver(event)).status_code == 200

        async def recorded() -> Call:
            async with CallsClient(mesh.calls_target) as client:
                while True:  # the gateway reports off the call path: poll, bounded by the timeout
                    try:
                        call = (await client.get_call("call-recorded")).call
                    except CallsCallError as exc:
                        assert exc.code == grpc.StatusCode.NOT_FOUND, exc
                    else:
                        if call.HasField("ended_at") and call.HasField("answered_at"):
                            return call
                    await asyncio.sleep(0.05)

        call = await asyncio.wait_for(recorded(), timeout=30)
        assert call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED
        assert call.answer_seconds == 1.5
        assert call.agent_identity == identity
        assert call.dispatch.persona_id == "crm-mesh"
        assert call.dialed_number == DIALED
        assert call.duration_seconds == 30
        assert mesh.calls_database_path is not None
