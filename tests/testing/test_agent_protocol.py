"""The LiveKit stand-in's `/agent` WebSocket, driven by a minimal hand-written agent protocol
client (binary protobuf WorkerMessage/ServerMessage frames over an aiohttp WebSocket), as
a livekit-agents worker connects: token with the `agent` grant, register, offers, status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import jwt
import pytest
from livekit import api
from livekit.protocol import agent as proto
from livekit.protocol.agent_dispatch import AgentDispatch, CreateAgentDispatchRequest

from services.testing.livekit_api import LiveKitStandIn

AGENT = "friday-ai-agent"
ROOM = "call-proto"
WAIT_S = 5


class ProtocolClient:
    """One worker connection: `send` a WorkerMessage, `next(kind)` the next ServerMessage of that kind."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.received: list[proto.ServerMessage] = []
        self._pending: asyncio.Queue[proto.ServerMessage] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                message = proto.ServerMessage()
                message.ParseFromString(msg.data)
                self.received.append(message)
                await self._pending.put(message)

    async def send(self, message: proto.WorkerMessage) -> None:
        await self.ws.send_bytes(message.SerializeToString())

    async def next(self, kind: str) -> proto.ServerMessage:
        async with asyncio.timeout(WAIT_S):
            while True:
                message = await self._pending.get()
                if message.WhichOneof("message") == kind:
                    return message

    async def register(self, agent_name: str = AGENT) -> proto.RegisterWorkerResponse:
        await self.send(
            proto.WorkerMessage(register=proto.RegisterWorkerRequest(type=proto.JobType.JT_ROOM, agent_name=agent_name))
        )
        return (await self.next("register")).register

    async def answer(self, job_id: str, *, available: bool, terminate: bool = False, identity: str = "") -> None:
        response = proto.AvailabilityResponse(
            job_id=job_id, available=available, terminate=terminate, participant_identity=identity
        )
        await self.send(proto.WorkerMessage(availability=response))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def worker_token(lk: LiveKitStandIn, *, agent: bool = True) -> str:
    # What livekit-agents' worker sends: AccessToken(...).with_grants(VideoGrants(agent=True)).
    return api.AccessToken(lk.api_key, lk.api_secret).with_grants(api.VideoGrants(agent=agent)).to_jwt()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def lkapi(livekit: LiveKitStandIn) -> AsyncIterator[api.LiveKitAPI]:
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=False) as client:
        yield client


async def connect(lk: LiveKitStandIn, http: aiohttp.ClientSession) -> ProtocolClient:
    ws = await http.ws_connect(
        lk.url.replace("http", "ws") + "/agent", headers={"Authorization": f"Bearer {worker_token(lk)}"}
    )
    return ProtocolClient(ws)


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():  # noqa: ASYNC110 - the stand-in has no event for these states
            await asyncio.sleep(0.01)


async def dispatch(lkapi: api.LiveKitAPI, agent: str = AGENT) -> AgentDispatch:
    return await lkapi.agent_dispatch.create_dispatch(
        CreateAgentDispatchRequest(agent_name=agent, room=ROOM, metadata='{"schemaVersion":1}')
    )


async def jobs_of(lkapi: api.LiveKitAPI, created: AgentDispatch) -> list[proto.Job]:
    (found,) = [d for d in await lkapi.agent_dispatch.list_dispatch(ROOM) if d.id == created.id]
    return list(found.state.jobs)


async def test_the_upgrade_needs_a_token_with_the_agent_grant(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession
) -> None:
    url = livekit.url + "/agent"
    for headers in ({}, {"Authorization": f"Bearer {worker_token(livekit, agent=False)}"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(url, headers=headers)
        assert err.value.status == 401
    forged = api.AccessToken(livekit.api_key, "another-secret-long-enough-for-hs256-0123456789")
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(
            url, headers={"Authorization": f"Bearer {forged.with_grants(api.VideoGrants(agent=True)).to_jwt()}"}
        )
    assert err.value.status == 401
    assert livekit.workers.workers() == []


async def test_register_answers_a_worker_id_and_server_info_and_the_worker_is_in_the_registry(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession
) -> None:
    client = await connect(livekit, http)
    reply = await client.register()
    assert reply.worker_id.startswith("AW_") and len(reply.worker_id) == 15
    assert reply.server_info.edition == reply.server_info.Edition.Standard
    assert reply.server_info.agent_protocol >= 1
    assert [(w.id, w.agent_name) for w in livekit.workers.workers()] == [(reply.worker_id, AGENT)]
    await client.close()


async def test_an_accepted_offer_is_assigned_with_a_room_token_and_list_dispatch_shows_the_job(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    worker_id = (await client.register()).worker_id
    created = await dispatch(lkapi)
    offer = (await client.next("availability")).availability
    assert offer.job.dispatch_id == created.id and offer.job.room.name == ROOM
    assert offer.job.metadata == '{"schemaVersion":1}' and offer.job.agent_name == AGENT
    assert offer.job.id.startswith("AJ_")
    await client.answer(offer.job.id, available=True, identity="agent-" + offer.job.id)
    assignment = (await client.next("assignment")).assignment
    assert assignment.job.id == offer.job.id and assignment.job.metadata == offer.job.metadata
    assert assignment.url == livekit.url.replace("http", "ws")
    claims = jwt.decode(assignment.token, livekit.api_secret, algorithms=["HS256"], issuer=livekit.api_key)
    assert claims["sub"] == "agent-" + offer.job.id and claims["kind"] == "agent"
    assert claims["video"]["roomJoin"] is True and claims["video"]["room"] == ROOM and claims["video"]["agent"] is True
    await livekit.settle()
    (job,) = await jobs_of(lkapi, created)
    assert job.id == offer.job.id and job.state.status == proto.JobStatus.JS_RUNNING
    assert job.state.worker_id == worker_id and job.state.participant_identity == "agent-" + offer.job.id
    assert livekit.agents(ROOM) == ["agent-" + offer.job.id]
    await client.close()


async def test_a_rejected_offer_ends_the_job_without_an_assignment(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register()
    created = await dispatch(lkapi)
    offer = (await client.next("availability")).availability
    await client.answer(offer.job.id, available=False, terminate=True)
    await livekit.settle()
    (job,) = await jobs_of(lkapi, created)
    assert job.state.status == proto.JobStatus.JS_SUCCESS and job.state.ended_at > 0
    assert job.state.participant_identity == "" and livekit.agents(ROOM) == []
    assert [m for m in client.received if m.WhichOneof("message") == "assignment"] == []
    await client.close()


async def test_not_available_passes_the_offer_to_the_next_worker_of_the_name(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    first, second = await connect(livekit, http), await connect(livekit, http)
    await first.register()
    await second.register()
    created = await dispatch(lkapi)
    offers = {asyncio.create_task(c.next("availability")): c for c in (first, second)}
    done, pending = await asyncio.wait(offers, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    (asked_task,), (other_task,) = done, pending
    offer = asked_task.result().availability
    await offers[asked_task].answer(offer.job.id, available=False)
    other = offers[other_task]
    again = (await other_task).availability
    assert again.job.id == offer.job.id
    await other.answer(again.job.id, available=True, identity="agent-x")
    await other.next("assignment")
    await livekit.settle()
    (job,) = await jobs_of(lkapi, created)
    assert job.state.status == proto.JobStatus.JS_RUNNING and job.state.participant_identity == "agent-x"
    await first.close()
    await second.close()


async def test_a_worker_reporting_full_is_not_asked(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register()
    await client.send(
        proto.WorkerMessage(update_worker=proto.UpdateWorkerStatus(status=proto.WorkerStatus.WS_FULL, job_count=3))
    )
    await until(lambda: next(iter(livekit.agent_protocol.connections.values())).job_count == 3)
    created = await dispatch(lkapi)
    await livekit.settle()
    assert await jobs_of(lkapi, created) == []
    assert [m for m in client.received if m.WhichOneof("message") == "availability"] == []
    await client.close()


async def test_job_status_updates_reach_the_registry_and_a_failed_job_takes_its_agent_out(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register()
    await dispatch(lkapi)
    offer = (await client.next("availability")).availability
    await client.answer(offer.job.id, available=True, identity="agent-1")
    await client.next("assignment")
    await livekit.settle()
    await client.send(
        proto.WorkerMessage(update_job=proto.UpdateJobStatus(job_id=offer.job.id, status=proto.JobStatus.JS_RUNNING))
    )
    failed = proto.UpdateJobStatus(job_id=offer.job.id, status=proto.JobStatus.JS_FAILED, error="could not connect")
    await client.send(proto.WorkerMessage(update_job=failed))

    def ended() -> bool:
        job = livekit.workers.job(offer.job.id)
        return job is not None and job.state.status == proto.JobStatus.JS_FAILED

    await until(ended)
    job = livekit.workers.job(offer.job.id)
    assert job is not None and job.state.error == "could not connect" and job.state.ended_at > 0
    assert livekit.agents(ROOM) == []
    await client.close()


async def test_delete_dispatch_sends_job_termination(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register()
    created = await dispatch(lkapi)
    offer = (await client.next("availability")).availability
    await client.answer(offer.job.id, available=True, identity="agent-1")
    await client.next("assignment")
    await livekit.settle()
    await lkapi.agent_dispatch.delete_dispatch(created.id, ROOM)
    termination = (await client.next("termination")).termination
    assert termination.job_id == offer.job.id
    await livekit.settle()
    job = livekit.workers.job(offer.job.id)
    assert job is not None and job.state.status == proto.JobStatus.JS_SUCCESS
    assert livekit.agents(ROOM) == []
    await client.close()


async def test_ping_is_answered_with_pong(livekit: LiveKitStandIn, http: aiohttp.ClientSession) -> None:
    client = await connect(livekit, http)
    await client.register()
    await client.send(proto.WorkerMessage(ping=proto.WorkerPing(timestamp=1234)))
    pong = (await client.next("pong")).pong
    assert pong.last_timestamp == 1234 and pong.timestamp > 0
    await client.close()


async def test_a_worker_without_agent_name_gets_only_the_implicit_dispatch(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register(agent_name="")
    created = await dispatch(lkapi)  # creates the room, and with it the room's implicit dispatch
    offer = (await client.next("availability")).availability
    assert offer.job.agent_name == "" and offer.job.dispatch_id != created.id and offer.job.metadata == ""
    await client.answer(offer.job.id, available=True, identity="agent-implicit")
    await client.next("assignment")
    await livekit.settle()
    assert await jobs_of(lkapi, created) == []
    assert [m.availability.job.id for m in client.received if m.WhichOneof("message") == "availability"] == [
        offer.job.id
    ]
    await client.close()


async def test_closing_the_socket_removes_the_worker_and_its_agents_leave(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register()
    await dispatch(lkapi)
    offer = (await client.next("availability")).availability
    await client.answer(offer.job.id, available=True, identity="agent-1")
    await client.next("assignment")
    await livekit.settle()
    assert livekit.agents(ROOM) == ["agent-1"]
    await client.close()
    await until(lambda: livekit.workers.workers() == [])
    assert livekit.agents(ROOM) == [] and livekit.agent_protocol.connections == {}


async def test_a_worker_closing_while_offered_passes_the_job_on(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession, lkapi: api.LiveKitAPI
) -> None:
    client = await connect(livekit, http)
    await client.register()
    created = await dispatch(lkapi)
    await client.next("availability")
    await client.close()
    await livekit.settle()
    assert await jobs_of(lkapi, created) == []


async def test_rtc_signalling_is_not_served_and_can_be_held_before_its_404(
    livekit: LiveKitStandIn, http: aiohttp.ClientSession
) -> None:
    async with http.get(livekit.url + "/rtc/v1") as response:
        assert response.status == 404
    livekit.rtc_hold_seconds = 0.3
    started = asyncio.get_running_loop().time()
    async with http.get(livekit.url + "/rtc") as response:
        assert response.status == 404
    assert asyncio.get_running_loop().time() - started >= 0.3
