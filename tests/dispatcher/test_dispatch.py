"""DispatchAgent against the LiveKit stand-in through a real gRPC server: one
dispatch per call however often, and how often concurrently, it is asked for."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from services.common import job_metadata as codec
from services.dispatcher.client import DispatcherCallError
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, RunningDispatcher, job_metadata


async def test_dispatch_creates_one_dispatch_with_parseable_metadata(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("call-room-1")
    metadata = job_metadata("call-room-1")
    response = await dispatcher.client.dispatch_agent("call-room-1", AGENT, metadata, trace_id="EV_test")

    assert response.already_existed is False
    held = livekit.dispatches("call-room-1")
    assert len(held) == 1
    assert held[0].id == response.dispatch.dispatch_id
    assert held[0].id.startswith("AD_")
    assert held[0].agent_name == AGENT
    assert held[0].room == "call-room-1"
    parsed = codec.decode(held[0].metadata)
    assert parsed.persona.display_name == "Asha"
    assert parsed.call.sip_call_id == "SCL_test"
    assert parsed.trace_id == "EV_test"
    assert response.dispatch.metadata == held[0].metadata
    assert response.dispatch.job_metadata == parsed  # typed: nothing for the caller to decode
    (listed,) = [d for d in await dispatcher.client.list_dispatches("call-room-1") if d.agent_name == AGENT]
    assert listed.job_metadata == parsed


async def test_same_request_five_times_sequentially_makes_one_dispatch(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("seq-room")
    metadata = job_metadata("seq-room")
    responses = [await dispatcher.client.dispatch_agent("seq-room", AGENT, metadata) for _ in range(5)]

    assert [r.already_existed for r in responses] == [False, True, True, True, True]
    assert len({r.dispatch.dispatch_id for r in responses}) == 1
    assert len(livekit.dispatches("seq-room")) == 1
    assert livekit.create_count() == 1


async def test_same_request_twenty_times_concurrently_makes_one_dispatch(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("burst-room")
    livekit.set_latency(0.02)  # keep the first create in flight while the others arrive
    metadata = job_metadata("burst-room")
    responses = await asyncio.gather(
        *(dispatcher.client.dispatch_agent("burst-room", AGENT, metadata) for _ in range(20))
    )

    assert sum(not r.already_existed for r in responses) == 1
    assert len({r.dispatch.dispatch_id for r in responses}) == 1
    assert len(livekit.dispatches("burst-room")) == 1
    assert livekit.create_count() == 1
    assert dispatcher.metric("friday_dispatcher_dispatches_total", {"outcome": "created", "code": "OK"}) == 1
    assert dispatcher.metric("friday_dispatcher_dispatches_total", {"outcome": "already_existed", "code": "OK"}) == 19


async def test_existing_dispatch_made_elsewhere_is_returned_not_duplicated(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    # Someone (e.g. a LiveKit dispatch rule or an older deployment) already put the agent there.
    livekit.create_room("pre-room")
    from livekit import api

    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        made = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(room="pre-room", agent_name=AGENT, metadata="{}")
        )
    response = await dispatcher.client.dispatch_agent("pre-room", AGENT, job_metadata("pre-room"))

    assert response.already_existed is True
    assert response.dispatch.dispatch_id == made.id
    assert not response.dispatch.HasField("job_metadata")  # "{}" is not ours to read
    assert len(livekit.dispatches("pre-room")) == 1


async def test_another_agent_name_in_the_same_room_gets_its_own_dispatch(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("two-agents")
    livekit.workers.register("friday-notetaker")
    await dispatcher.client.dispatch_agent("two-agents", AGENT, job_metadata("two-agents"))
    other = await dispatcher.client.dispatch_agent("two-agents", "friday-notetaker", job_metadata("two-agents"))

    assert other.already_existed is False
    assert sorted(d.agent_name for d in livekit.dispatches("two-agents")) == [AGENT, "friday-notetaker"]


async def test_without_sip_call_id_the_room_is_the_claim(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("no-call-id")
    metadata = job_metadata("no-call-id", sip_call_id="")
    livekit.set_latency(0.02)
    responses = await asyncio.gather(
        *(dispatcher.client.dispatch_agent("no-call-id", AGENT, metadata) for _ in range(5))
    )

    assert sum(not r.already_existed for r in responses) == 1
    assert len(livekit.dispatches("no-call-id")) == 1


async def test_list_and_cancel_pass_through(livekit: LiveKitStandIn, dispatcher: RunningDispatcher) -> None:
    livekit.create_room("list-room")
    created = await dispatcher.client.dispatch_agent("list-room", AGENT, job_metadata("list-room"))

    listed = await dispatcher.client.list_dispatches("list-room")
    # LiveKit lists the room's implicit dispatch (agent name "") beside ours.
    assert sorted(d.agent_name for d in listed) == ["", AGENT]
    assert [d.dispatch_id for d in listed if d.agent_name == AGENT] == [created.dispatch.dispatch_id]

    cancelled = await dispatcher.client.cancel_dispatch("list-room", created.dispatch.dispatch_id)
    assert cancelled.dispatch_id == created.dispatch.dispatch_id
    assert livekit.dispatches("list-room") == []
    assert [d.agent_name for d in await dispatcher.client.list_dispatches("list-room")] == [""]


async def test_cancel_of_unknown_dispatch_is_not_found(livekit: LiveKitStandIn, dispatcher: RunningDispatcher) -> None:
    livekit.create_room("some-room")
    with pytest.raises(DispatcherCallError) as caught:
        await dispatcher.client.cancel_dispatch("some-room", "AD_doesnotexist")

    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.reason == "DISPATCH_NOT_FOUND"
