"""Rooms in the LiveKit stand-in as livekit-server keeps them: the implicit dispatch every room
lists, auto-creation by CreateDispatch, psrpc's timeout for a room nobody holds, RoomService,
and what closing a room or deleting a dispatch does to the jobs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from livekit import api
from livekit.protocol.agent import JobStatus
from livekit.protocol.agent_dispatch import CreateAgentDispatchRequest
from livekit.protocol.room import CreateRoomRequest, DeleteRoomRequest, ListRoomsRequest

from services.testing.livekit_api import LiveKitStandIn
from services.testing.livekit_services import MISSING_ROOM_DELAY_SECONDS

AGENT = "friday-ai-agent"
ROOM = "call-rooms"


@pytest.fixture
async def quick() -> AsyncIterator[LiveKitStandIn]:
    """A stand-in whose missing rooms time out in 0.3 s instead of livekit's 15 s."""
    async with LiveKitStandIn(missing_room_delay_seconds=0.3) as standin:
        yield standin


def _api(lk: LiveKitStandIn) -> api.LiveKitAPI:
    return api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret, failover=False)


async def test_every_room_lists_an_implicit_dispatch_for_nameless_workers(livekit: LiveKitStandIn) -> None:
    livekit.create_room(ROOM)
    async with _api(livekit) as lkapi:
        (implicit,) = await lkapi.agent_dispatch.list_dispatch(ROOM)
        created = await lkapi.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(agent_name=AGENT, room="call-auto")
        )
        in_new_room = await lkapi.agent_dispatch.list_dispatch("call-auto")
    assert re.fullmatch(r"AD_\w{12}", implicit.id)
    assert (implicit.agent_name, implicit.room, implicit.metadata) == ("", ROOM, "")
    assert implicit.state.created_at > 0 and implicit.state.deleted_at == 0
    assert list(implicit.state.jobs) == []  # no nameless worker
    # The room CreateDispatch made has its own implicit dispatch beside ours.
    assert sorted(d.agent_name for d in in_new_room) == ["", AGENT]
    assert created.id in {d.id for d in in_new_room}
    assert livekit.dispatches(ROOM) == []  # the observer counts what CreateDispatch made
    assert [d.agent_name for d in livekit.dispatches(ROOM, include_implicit=True)] == [""]


async def test_list_dispatch_answers_in_no_particular_order(livekit: LiveKitStandIn) -> None:
    async with _api(livekit) as lkapi:
        for i in range(6):
            await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=f"a{i}", room=ROOM))
        orders = {tuple(d.id for d in await lkapi.agent_dispatch.list_dispatch(ROOM)) for _ in range(10)}
    assert len(orders) > 1  # a Go map: 7! orders, ten draws


async def test_list_and_delete_dispatch_in_a_missing_room_time_out_as_deadline_exceeded(quick: LiveKitStandIn) -> None:
    async with _api(quick) as lkapi:
        for call in (
            lambda: lkapi.agent_dispatch.list_dispatch("nobody-here"),
            lambda: lkapi.agent_dispatch.delete_dispatch("AD_xxxxxxxxxxxx", "nobody-here"),
        ):
            began = time.monotonic()
            with pytest.raises(api.TwirpError) as excinfo:
                await call()
            assert time.monotonic() - began >= 0.3
            assert (excinfo.value.status, excinfo.value.code, excinfo.value.message) == (
                408,
                "deadline_exceeded",
                "request timed out",
            )
    assert not quick.has_room("nobody-here")  # asking does not create it


async def test_a_room_that_appears_during_the_wait_is_found_by_a_later_attempt() -> None:
    # psrpc's attempts at 0, 3 and 8 of 15 s, scaled to 1.5 s: at 0, 0.3 and 0.8 s.
    async with LiveKitStandIn(missing_room_delay_seconds=1.5) as lk, _api(lk) as lkapi:
        listing = asyncio.ensure_future(lkapi.agent_dispatch.list_dispatch(ROOM))
        await asyncio.sleep(0.1)
        lk.create_room(ROOM)
        began = time.monotonic()
        listed = await listing
        waited = time.monotonic() - began
    assert [d.agent_name for d in listed] == [""]
    assert 0.1 <= waited < 1.2


def test_the_missing_room_delay_is_livekits_fifteen_seconds_by_default() -> None:
    assert LiveKitStandIn().missing_room_delay_seconds == MISSING_ROOM_DELAY_SECONDS == 15.0
    assert LiveKitStandIn().auto_create is True


async def test_create_dispatch_creates_the_room_when_auto_create_is_on(livekit: LiveKitStandIn) -> None:
    assert livekit.rooms() == []
    async with _api(livekit) as lkapi:
        await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        rooms = (await lkapi.room.list_rooms(ListRoomsRequest())).rooms
    assert [r.name for r in rooms] == [ROOM]


async def test_without_auto_create_a_dispatch_to_a_missing_room_times_out() -> None:
    async with LiveKitStandIn(auto_create=False, missing_room_delay_seconds=0.2) as lk, _api(lk) as lkapi:
        with pytest.raises(api.TwirpError) as excinfo:
            await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        assert (excinfo.value.status, excinfo.value.code) == (408, "deadline_exceeded")
        assert lk.create_count() == 0 and not lk.has_room(ROOM)
        lk.create_room(ROOM)
        await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        assert len(lk.dispatches(ROOM)) == 1


async def test_list_rooms_answers_at_once_and_filters_by_name(quick: LiveKitStandIn) -> None:
    for name in ("call-a", "call-b", "call-c"):
        quick.create_room(name)
    quick.workers.register(AGENT)
    async with _api(quick) as lkapi:
        await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room="call-b"))
        await quick.settle()
        began = time.monotonic()
        some = (await lkapi.room.list_rooms(ListRoomsRequest(names=["call-b", "call-c", "never-made"]))).rooms
        every = (await lkapi.room.list_rooms(ListRoomsRequest())).rooms
        assert time.monotonic() - began < 0.3  # no psrpc wait, unlike a dispatch call for a missing room
    assert sorted(r.name for r in some) == ["call-b", "call-c"]
    assert sorted(r.name for r in every) == ["call-a", "call-b", "call-c"]
    room_b = next(r for r in some if r.name == "call-b")
    assert re.fullmatch(r"RM_\w{12}", room_b.sid)
    assert (room_b.empty_timeout, room_b.departure_timeout) == (300, 20)
    assert room_b.creation_time > 0 and room_b.creation_time_ms // 1000 == room_b.creation_time
    assert room_b.num_participants == 1  # the agent
    assert "audio/opus" in [c.mime for c in room_b.enabled_codecs]


async def test_list_rooms_needs_the_room_list_grant(livekit: LiveKitStandIn) -> None:
    admin_only = api.AccessToken(livekit.api_key, livekit.api_secret).with_grants(
        api.VideoGrants(room_admin=True, room=ROOM)
    )
    headers = {"Authorization": f"Bearer {admin_only.to_jwt()}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{livekit.url}/twirp/livekit.RoomService/ListRooms", data=b"{}", headers=headers) as r:
            assert (r.status, await r.json()) == (401, {"code": "unauthenticated", "msg": "permissions denied"})


async def test_create_and_delete_room_over_room_service(livekit: LiveKitStandIn) -> None:
    async with _api(livekit) as lkapi:
        made = await lkapi.room.create_room(CreateRoomRequest(name=ROOM))
        assert made.name == ROOM and livekit.has_room(ROOM)
        assert (await lkapi.room.create_room(CreateRoomRequest(name=ROOM))).sid == made.sid  # it exists: unchanged
        await lkapi.room.delete_room(DeleteRoomRequest(room=ROOM))
        assert not livekit.has_room(ROOM)
        with pytest.raises(api.TwirpError) as excinfo:
            await lkapi.room.delete_room(DeleteRoomRequest(room=ROOM))
    assert (excinfo.value.status, excinfo.value.code, excinfo.value.message) == (
        404,
        "not_found",
        "requested room does not exist",
    )


async def test_closing_a_room_ends_its_dispatches_and_its_jobs(quick: LiveKitStandIn) -> None:
    quick.workers.register(AGENT)
    async with _api(quick) as lkapi:
        first = await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        await quick.settle()
        (job,) = (await lkapi.agent_dispatch.get_dispatch(first.id, ROOM)).state.jobs
        old_sid = quick.rooms()[0].sid

        assert quick.delete_room(ROOM) is True
        assert quick.delete_room(ROOM) is False
        assert quick.agents(ROOM) == []
        ended = quick.workers.job(job.id)
        assert ended is not None
        assert (ended.state.status, ended.state.error) == (JobStatus.JS_FAILED, "agent worker left the room")
        with pytest.raises(api.TwirpError) as excinfo:
            await lkapi.agent_dispatch.list_dispatch(ROOM)
        assert excinfo.value.code == "deadline_exceeded"

        # A later dispatch makes a new room, with a new implicit dispatch and nothing of the old one.
        await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        listed = await lkapi.agent_dispatch.list_dispatch(ROOM)
    assert first.id not in {d.id for d in listed} and len(listed) == 2
    assert quick.rooms()[0].sid != old_sid


async def test_delete_dispatch_terminates_its_jobs_and_the_agent_leaves(livekit: LiveKitStandIn) -> None:
    livekit.workers.register(AGENT)
    async with _api(livekit) as lkapi:
        created = await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        await livekit.settle()
        assert len(livekit.agents(ROOM)) == 1
        deleted = await lkapi.agent_dispatch.delete_dispatch(created.id, ROOM)
        # Answered as it was: the termination runs after the answer.
        (answered_job,) = deleted.state.jobs
        assert answered_job.state.status == JobStatus.JS_RUNNING
        await livekit.settle()
        assert [d.agent_name for d in await lkapi.agent_dispatch.list_dispatch(ROOM)] == [""]
    ended = livekit.workers.job(answered_job.id)
    assert ended is not None
    assert (ended.state.status, ended.state.error) == (JobStatus.JS_SUCCESS, "")
    assert ended.state.ended_at > 0
    assert livekit.agents(ROOM) == []


async def test_delete_dispatch_waits_for_a_job_still_launching_then_terminates_it(livekit: LiveKitStandIn) -> None:
    livekit.workers.register(AGENT, accept_delay=0.2)
    async with _api(livekit) as lkapi:
        created = await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name=AGENT, room=ROOM))
        deleted = await lkapi.agent_dispatch.delete_dispatch(created.id, ROOM)
    assert list(deleted.state.jobs) == []
    await livekit.settle()
    (job,) = livekit.workers.jobs()
    assert (job.dispatch_id, job.state.status) == (created.id, JobStatus.JS_SUCCESS)
    assert livekit.agents(ROOM) == []
