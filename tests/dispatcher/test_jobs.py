"""A dispatch is not an agent: DispatchAgent against a LiveKit whose workers are
absent, slow, failing or rejecting (the stand-in's worker model), and rooms that are gone."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.dispatcher.client import DispatcherCallError
from services.dispatcher.config import JobConfig
from services.dispatcher.jobs import poll_delays
from services.testing.agent_workers import JobOutcome
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, RunningDispatcher, config_for, job_metadata

NO_WORKER = "friday_dispatcher_no_agent_worker_total"


async def _refused(d: RunningDispatcher, room: str, timeout: float = 5.0) -> DispatcherCallError:
    with pytest.raises(DispatcherCallError) as refused:
        await d.client.dispatch_agent(room, AGENT, job_metadata(room), timeout=timeout)
    return refused.value


async def test_no_worker_is_refused_within_the_budget_and_leaves_no_dispatch(
    livekit: LiveKitStandIn, start_dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    livekit.workers.set_absent(AGENT)
    livekit.create_room("nobody-home")
    d = await start_dispatcher(config_for(livekit))

    started = time.monotonic()
    error = await _refused(d, "nobody-home", timeout=3.0)

    assert (error.code.name, error.reason, error.retryable) == ("UNAVAILABLE", "NO_AGENT_WORKER", True)
    assert time.monotonic() - started < 3.0  # our answer, not the caller's deadline
    assert livekit.dispatches("nobody-home") == []  # withdrawn: nothing left for a worker that never comes
    assert d.metric(NO_WORKER) == 1
    assert any("no agent worker took the job" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


async def test_once_a_worker_is_back_the_same_request_gets_exactly_one_agent(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    livekit.workers.set_absent(AGENT)
    livekit.create_room("comes-back")
    d = await start_dispatcher(config_for(livekit))
    await _refused(d, "comes-back")

    livekit.workers.register(AGENT)
    first = await d.client.dispatch_agent("comes-back", AGENT, job_metadata("comes-back"))
    again = await d.client.dispatch_agent("comes-back", AGENT, job_metadata("comes-back"))

    (held,) = livekit.dispatches("comes-back")
    assert first.dispatch.dispatch_id == again.dispatch.dispatch_id == held.id
    assert (first.already_existed, again.already_existed) == (False, True)
    assert first.job.status == "JS_RUNNING" and first.job.worker_id.startswith("AW_")
    assert first.job.job_id and first.job.participant_identity == "agent-" + first.job.job_id
    assert len(held.state.jobs) == 1


def _first(n: int, config: JobConfig) -> list[float]:
    delays = poll_delays(config)
    return [next(delays) for _ in range(n)]


def test_reads_start_soon_after_the_create_and_back_off_to_the_longest_gap() -> None:
    assert _first(7, JobConfig(first_poll=0.005, poll_interval=0.05)) == [0.005, 0.01, 0.02, 0.04, 0.05, 0.05, 0.05]
    # A first gap longer than the longest is the longest; one of zero would read in a tight loop.
    assert _first(2, JobConfig(first_poll=0.2, poll_interval=0.05)) == [0.05, 0.05]
    assert min(_first(3, JobConfig(first_poll=0.0, poll_interval=0.05))) > 0


def _reads(livekit: LiveKitStandIn, room: str, method: str = "ListDispatch") -> int:
    return sum(1 for call in livekit.calls if call.method == method and call.room == room)


async def test_a_worker_that_takes_the_job_at_once_is_confirmed_by_an_early_read(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    # The longest gap is longer than the whole job wait: only the early reads can see the job,
    # so a dispatcher that waited one longest gap first would answer NO_AGENT_WORKER.
    livekit.create_room("at-once")
    jobs = JobConfig(wait_seconds=1.0, first_poll=0.005, poll_interval=5.0)
    d = await start_dispatcher(config_for(livekit, jobs=jobs))
    before = _reads(livekit, "at-once")

    response = await d.client.dispatch_agent("at-once", AGENT, job_metadata("at-once"), timeout=5.0)

    assert response.job.status == "JS_RUNNING" and response.already_existed is False
    assert _reads(livekit, "at-once", "CreateDispatch") == 1
    assert 1 <= _reads(livekit, "at-once") - before


async def test_a_worker_that_never_comes_costs_livekit_a_bounded_number_of_reads(
    livekit: LiveKitStandIn, start_dispatcher
) -> None:
    # Gaps of 1, 2, 4, ... 64 ms, then 100 ms, over a 0.6 s wait: 12 reads, the last at the wait's
    # end. A loaded machine makes fewer (each read takes longer), never more; a poll that did not
    # back off from 1 ms would make hundreds.
    livekit.workers.set_absent(AGENT)
    livekit.create_room("never-comes")
    jobs = JobConfig(wait_seconds=0.6, first_poll=0.001, poll_interval=0.1)
    d = await start_dispatcher(config_for(livekit, jobs=jobs))

    error = await _refused(d, "never-comes")

    assert error.reason == "NO_AGENT_WORKER"
    assert livekit.dispatches("never-comes") == []
    assert _reads(livekit, "never-comes", "CreateDispatch") == 1
    assert 1 <= _reads(livekit, "never-comes") <= 12 + 4  # + the reads before the create and after the withdrawal


async def test_a_slow_worker_inside_the_job_wait_is_waited_for(livekit: LiveKitStandIn, start_dispatcher) -> None:
    livekit.workers.set_absent(AGENT)
    livekit.workers.register(AGENT, accept_delay=0.3)
    livekit.create_room("slow-worker")
    d = await start_dispatcher(config_for(livekit))

    response = await d.client.dispatch_agent("slow-worker", AGENT, job_metadata("slow-worker"))

    assert response.job.status == "JS_RUNNING"
    assert len(livekit.dispatches("slow-worker")) == 1


@pytest.mark.parametrize("outcome", [JobOutcome.REJECTS])
async def test_a_job_that_ends_unserved_is_replaced_once(
    livekit: LiveKitStandIn, start_dispatcher, outcome: JobOutcome
) -> None:
    livekit.workers.set_absent(AGENT)
    bad = livekit.workers.register(AGENT, outcome=outcome)
    livekit.create_room("bad-worker")
    d = await start_dispatcher(config_for(livekit))

    async def good_worker_arrives() -> None:
        # The first job ends unserved; a healthy worker takes the replacement.
        while not livekit.dispatches("bad-worker"):  # noqa: ASYNC110 - the stand-in has no event for it
            await asyncio.sleep(0.005)
        livekit.workers.remove(bad.id)
        livekit.workers.register(AGENT)

    arrival = asyncio.create_task(good_worker_arrives())
    response = await d.client.dispatch_agent("bad-worker", AGENT, job_metadata("bad-worker"))
    await arrival

    assert response.job.status == "JS_RUNNING"
    (held,) = livekit.dispatches("bad-worker")  # the unserved one withdrawn, one replacement
    assert held.id == response.dispatch.dispatch_id
    assert livekit.create_count() == 2
    assert d.metric("friday_dispatcher_failed_jobs_total") == 1


async def test_a_job_that_fails_twice_is_no_agent_worker(livekit: LiveKitStandIn, start_dispatcher) -> None:
    livekit.workers.set_absent(AGENT)
    livekit.workers.register(AGENT, outcome=JobOutcome.REJECTS)
    livekit.create_room("always-rejects")
    d = await start_dispatcher(config_for(livekit))

    error = await _refused(d, "always-rejects")

    assert error.reason == "NO_AGENT_WORKER"
    assert livekit.create_count() == 2  # replaced once, then given up
    assert livekit.dispatches("always-rejects") == []


async def test_a_leftover_dispatch_without_a_job_is_replaced_not_doubled(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    from livekit import api

    livekit.workers.set_absent(AGENT)
    livekit.create_room("leftover")
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        stale = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(room="leftover", agent_name=AGENT)
        )
    livekit.workers.register(AGENT)  # too late for that dispatch: LiveKit never offers it again

    response = await dispatcher.client.dispatch_agent("leftover", AGENT, job_metadata("leftover"))

    (held,) = livekit.dispatches("leftover")
    assert held.id == response.dispatch.dispatch_id != stale.id
    assert response.already_existed is False and response.job.status == "JS_RUNNING"


async def test_a_gone_room_is_room_not_found_at_once_and_creates_nothing(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    started = time.monotonic()
    error = await _refused(dispatcher, "hung-up")

    assert (error.code.name, error.reason, error.retryable) == ("NOT_FOUND", "ROOM_NOT_FOUND", False)
    assert time.monotonic() - started < 1.0  # ListRooms answers at once; ListDispatch would hang
    assert livekit.create_count() == 0
    assert "hung-up" not in [r.name for r in livekit.rooms()]


async def test_trunk_numbers_come_from_livekits_sip_api_and_are_cached(
    livekit: LiveKitStandIn, dispatcher: RunningDispatcher
) -> None:
    livekit.add_inbound_trunk("ST_one", ["+918655701159"])
    assert await dispatcher.client.trunk_numbers("ST_one") == ["+918655701159"]
    assert await dispatcher.client.trunk_numbers("ST_one") == ["+918655701159"]
    assert [c.method for c in livekit.calls].count("ListSIPInboundTrunk") == 1

    with pytest.raises(DispatcherCallError) as missing:
        await dispatcher.client.trunk_numbers("ST_none")
    assert (missing.value.code.name, missing.value.reason) == ("NOT_FOUND", "TRUNK_NOT_FOUND")
