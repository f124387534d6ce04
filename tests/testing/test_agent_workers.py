"""A dispatch is not an agent: what the LiveKit stand-in's workers do with each dispatch's job,
seen as livekit-server shows it (ListDispatch's `state.jobs`) and as the worker reports it."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator

import pytest
from livekit import api
from livekit.protocol.agent import JobStatus, JobType
from livekit.protocol.agent_dispatch import AgentDispatch, CreateAgentDispatchRequest

from services.testing.agent_workers import NO_WORKER_LOG, JobOutcome
from services.testing.livekit_api import LiveKitStandIn

AGENT = "friday-ai-agent"
ROOM = "call-workers"
ID = r"[23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz]{12}"


@pytest.fixture
async def lkapi(livekit: LiveKitStandIn) -> AsyncIterator[api.LiveKitAPI]:
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=False) as client:
        yield client


async def _dispatch(lkapi: api.LiveKitAPI, room: str = ROOM, agent: str = AGENT) -> AgentDispatch:
    return await lkapi.agent_dispatch.create_dispatch(
        CreateAgentDispatchRequest(agent_name=agent, room=room, metadata='{"schemaVersion":1}')
    )


async def _listed(lkapi: api.LiveKitAPI, dispatch: AgentDispatch) -> AgentDispatch:
    (found,) = [d for d in await lkapi.agent_dispatch.list_dispatch(dispatch.room) if d.id == dispatch.id]
    return found


async def test_a_bare_standin_has_no_workers_so_a_dispatch_stays_without_a_job(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI, caplog: pytest.LogCaptureFixture
) -> None:
    assert livekit.workers.workers() == []
    with caplog.at_level(logging.INFO, logger="services.testing.livekit"):
        created = await _dispatch(lkapi)  # CreateDispatch succeeds all the same
        await livekit.settle()
    assert created.id.startswith("AD_")
    assert list((await _listed(lkapi, created)).state.jobs) == []
    said = [r.getMessage() for r in caplog.records if NO_WORKER_LOG in r.getMessage()]
    assert len(said) == 1 and f"agentName='{AGENT}'" in said[0] and f"room='{ROOM}'" in said[0]


async def test_a_present_worker_takes_the_job_and_list_dispatch_shows_it_as_livekit_fills_it(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    worker = livekit.workers.register(AGENT)
    before = time.time_ns()
    created = await _dispatch(lkapi)
    assert list(created.state.jobs) == []  # the job is launched after CreateDispatch answered
    await livekit.settle()

    (job,) = (await _listed(lkapi, created)).state.jobs
    assert re.fullmatch("AJ_" + ID, job.id)
    assert re.fullmatch("AW_" + ID, worker.id)
    assert (job.dispatch_id, job.type, job.room.name, job.agent_name) == (created.id, JobType.JT_ROOM, ROOM, AGENT)
    assert job.metadata == '{"schemaVersion":1}'
    state = job.state
    assert state.status == JobStatus.JS_RUNNING
    assert state.worker_id == worker.id
    assert state.participant_identity == "agent-" + job.id  # livekit-agents' default identity
    assert before <= state.started_at == state.updated_at <= time.time_ns()
    assert (state.ended_at, state.error, state.agent_id) == (0, "", "")
    assert livekit.agents(ROOM) == ["agent-" + job.id]  # the agent joined the room


async def test_a_slow_worker_shows_its_job_only_once_it_accepted_stamped_when_it_was_asked(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    livekit.workers.register(AGENT, accept_delay=0.4)
    asked = time.time_ns()
    created = await _dispatch(lkapi)
    assert list((await _listed(lkapi, created)).state.jobs) == []
    await livekit.settle()
    answered = time.time_ns()
    (job,) = (await _listed(lkapi, created)).state.jobs
    assert job.state.status == JobStatus.JS_RUNNING
    assert answered - asked >= 400_000_000
    # AssignJob stamps started_at before it sends the availability request, not when the answer came.
    assert job.state.started_at - asked < 300_000_000


async def test_a_worker_slower_than_the_job_request_timeout_gets_no_job(caplog: pytest.LogCaptureFixture) -> None:
    async with LiveKitStandIn(job_request_timeout_seconds=0.2) as livekit:
        livekit.workers.register(AGENT, accept_delay=1.0)
        async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=False) as lkapi:
            with caplog.at_level(logging.INFO, logger="services.testing.livekit"):
                created = await _dispatch(lkapi)
                await livekit.settle()
            assert list((await _listed(lkapi, created)).state.jobs) == []
    assert any("failed to send job request" in r.getMessage() for r in caplog.records)
    assert livekit.workers.jobs() == []


async def test_a_failing_job_is_failed_on_the_worker_but_list_dispatch_keeps_the_state_it_was_given(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    livekit.workers.register(AGENT, outcome=JobOutcome.FAILS)
    created = await _dispatch(lkapi)
    await livekit.settle()
    (listed,) = (await _listed(lkapi, created)).state.jobs
    # livekit-server records the job request's answer and never the worker's later updates.
    assert listed.state.status == JobStatus.JS_RUNNING
    reported = livekit.workers.job(listed.id)
    assert reported is not None
    assert reported.state.status == JobStatus.JS_FAILED
    assert reported.state.ended_at >= reported.state.started_at > 0
    assert reported.state.error == ""  # livekit-agents reports a failure without a text
    assert livekit.agents(ROOM) == []  # the failed job's agent left


async def test_a_rejected_job_is_listed_as_ended_without_an_agent(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    worker = livekit.workers.register(AGENT, outcome=JobOutcome.REJECTS)
    created = await _dispatch(lkapi)
    await livekit.settle()
    (job,) = (await _listed(lkapi, created)).state.jobs
    assert job.state.status == JobStatus.JS_SUCCESS
    assert job.state.ended_at == job.state.started_at > 0
    assert (job.state.worker_id, job.state.participant_identity) == (worker.id, "")
    assert livekit.agents(ROOM) == []


async def test_a_full_worker_passes_the_job_on_and_with_none_left_there_is_no_job(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    livekit.workers.register(AGENT, outcome=JobOutcome.FULL)
    alone = await _dispatch(lkapi, room="call-full")
    await livekit.settle()
    assert list((await _listed(lkapi, alone)).state.jobs) == []

    willing = livekit.workers.register(AGENT)
    for i in range(5):  # whichever worker LiveKit asks first, the willing one ends up with the job
        created = await _dispatch(lkapi, room=f"call-full-{i}")
        await livekit.settle()
        (job,) = (await _listed(lkapi, created)).state.jobs
        assert job.state.worker_id == willing.id


async def test_a_worker_registered_after_the_dispatch_never_gets_its_job(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    early = await _dispatch(lkapi, room="call-early")
    await livekit.settle()
    livekit.workers.register(AGENT)
    late = await _dispatch(lkapi, room="call-late")
    await livekit.settle()
    assert list((await _listed(lkapi, early)).state.jobs) == []
    assert len((await _listed(lkapi, late)).state.jobs) == 1


async def test_workers_go_away_by_id_or_by_name(livekit: LiveKitStandIn, lkapi: api.LiveKitAPI) -> None:
    first = livekit.workers.register(AGENT)
    created = await _dispatch(lkapi)
    await livekit.settle()
    (job,) = (await _listed(lkapi, created)).state.jobs
    livekit.workers.remove(first.id)
    # The server forgets a closed worker's jobs without updating them; its agent is gone from the room.
    assert (await _listed(lkapi, created)).state.jobs[0].state.status == JobStatus.JS_RUNNING
    assert livekit.agents(ROOM) == []
    with pytest.raises(KeyError):
        livekit.workers.remove(first.id)

    livekit.workers.register(AGENT)
    livekit.workers.register(AGENT, accept_delay=0.1)
    livekit.workers.register("another-agent")
    assert len(livekit.workers.set_absent(AGENT)) == 2
    assert [w.agent_name for w in livekit.workers.workers()] == ["another-agent"]
    after = await _dispatch(lkapi, room="call-after")
    await livekit.settle()
    assert list((await _listed(lkapi, after)).state.jobs) == []
    assert livekit.workers.job(job.id) is not None


async def test_the_implicit_dispatch_goes_to_a_worker_registered_without_a_name(
    livekit: LiveKitStandIn, lkapi: api.LiveKitAPI
) -> None:
    nameless = livekit.workers.register("")
    livekit.create_room(ROOM)
    await livekit.settle()
    (implicit,) = await lkapi.agent_dispatch.list_dispatch(ROOM)
    assert implicit.agent_name == ""
    (job,) = implicit.state.jobs
    assert (job.agent_name, job.state.worker_id, job.state.status) == ("", nameless.id, JobStatus.JS_RUNNING)
