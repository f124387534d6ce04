"""Converging to one dispatch (services/dispatcher/reconcile.py): which dispatch every
replica keeps, and a double found in the room being healed by the next DispatchAgent."""

from __future__ import annotations

from livekit import api

from services.dispatcher.reconcile import keeper
from services.dispatcher.transport import DispatchRecord, JobRecord
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, RunningDispatcher, job_metadata


def _record(dispatch_id: str, created_at: int, *jobs: str, agent: str = AGENT) -> DispatchRecord:
    return DispatchRecord(
        dispatch_id,
        agent,
        "room",
        "{}",
        tuple(JobRecord(f"AJ_{dispatch_id}_{i}", status) for i, status in enumerate(jobs)),
        created_at=created_at,
    )


def test_the_oldest_is_kept_whatever_order_the_listing_comes_in() -> None:
    old, new = _record("AD_b", 100, "JS_RUNNING"), _record("AD_a", 200, "JS_RUNNING")
    assert keeper([new, old], AGENT) == old
    assert keeper([old, new], AGENT) == old


def test_same_created_at_is_decided_by_the_id() -> None:
    assert keeper([_record("AD_z", 100), _record("AD_c", 100)], AGENT).dispatch_id == "AD_c"  # type: ignore[union-attr]


def test_a_failed_dispatch_is_never_kept_nor_another_agents() -> None:
    failed, live = _record("AD_a", 100, "JS_FAILED"), _record("AD_b", 200, "JS_RUNNING")
    other = _record("AD_0", 1, "JS_RUNNING", agent="another-agent")
    assert keeper([failed, live, other], AGENT) == live
    assert keeper([failed], AGENT) is None
    assert keeper([_record("AD_i", 0, agent="")], AGENT) is None  # the room's implicit dispatch


async def test_a_double_found_in_the_room_is_healed_keeping_the_oldest(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.create_room("double-room")
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        first = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(room="double-room", agent_name=AGENT, metadata="{}")
        )
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(room="double-room", agent_name=AGENT, metadata="{}")
        )
    await livekit.settle()  # both jobs running: two agents in the call

    response = await dispatcher.client.dispatch_agent("double-room", AGENT, job_metadata("double-room"))

    assert response.already_existed
    assert response.dispatch.dispatch_id == first.id
    assert [d.id for d in livekit.dispatches("double-room")] == [first.id]
    assert dispatcher.metric("friday_dispatcher_duplicate_dispatches_removed_total") == 1
