"""A DispatcherService process SIGKILLed while its CreateDispatch is in flight: the
create still lands at LiveKit, after the crash, where the next request's ListDispatch
cannot have seen it. The call must still end with one agent.

- in-process claims: the claim dies with the process, so the restarted dispatcher
  creates again; it keeps re-reading the room while it is young enough that a
  predecessor's create may still land, and deletes the later one (the older is kept);
- Redis claims: the claim lives the settle time from before the create was sent, so
  the restarted dispatcher waits for the landing create instead of creating a second.

The dispatcher runs as a real process (services/testing/dispatcher_process.py); LiveKit
is the in-process stand-in holding the create (`hold_next`) for as long as the test says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from friday.dispatcher.v1.dispatcher_service_pb2 import DispatchAgentResponse
from services.dispatcher.client import DispatcherCallError, DispatcherClient
from services.testing.dispatcher_process import DispatcherProcess
from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT, REDIS_URL, job_metadata

# The production default: it must outlive the crashed request's claim TTL before the fix
# (deadline + 1 s) by more than a loaded machine's stalls. Neither test waits it out.
SETTLE_SECONDS = 10.0
FIRST_DEADLINE_SECONDS = 2.0


def _env(lk: LiveKitStandIn, redis_prefix: str | None) -> dict[str, str]:
    env = {
        "LIVEKIT_URL": lk.url,
        "LIVEKIT_API_KEY": lk.api_key,
        "LIVEKIT_API_SECRET": lk.api_secret,
        "DISPATCHER_HOST": "127.0.0.1",
        "DISPATCHER_CLAIM_SETTLE_SECONDS": str(SETTLE_SECONDS),
        "DISPATCHER_CLAIM_POLL_INTERVAL_SECONDS": "0.05",
        "DISPATCHER_RECONCILE_INTERVAL_SECONDS": "0.1",
    }
    if redis_prefix is not None:
        env |= {"REDIS_URL": REDIS_URL, "DISPATCHER_CLAIM_PREFIX": redis_prefix}
    return env


@pytest.fixture
async def processes() -> AsyncIterator[Callable[[dict[str, str], int], DispatcherProcess]]:
    started: list[DispatcherProcess] = []

    def make(env: dict[str, str], port: int = 0) -> DispatcherProcess:
        proc = DispatcherProcess(env, port=port)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        await proc.stop()


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Waits for `condition` (an upper bound for a stuck run, not a timing assumption)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():
        if loop.time() > give_up:
            raise AssertionError(f"still waiting for {what} after {timeout}s")
        await asyncio.sleep(0.02)


async def _crash_mid_create(lk: LiveKitStandIn, first: DispatcherProcess, room: str) -> float:
    """A DispatchAgent whose create LiveKit holds; the dispatcher is SIGKILLed meanwhile.
    Returns when the request was sent (loop time): its claim was taken after that."""
    await first.start()
    lk.hold_next(1, method="CreateDispatch")
    client = DispatcherClient(first.target)
    sent_at = asyncio.get_running_loop().time()
    request = asyncio.create_task(
        client.dispatch_agent(room, AGENT, job_metadata(room), timeout=FIRST_DEADLINE_SECONDS)
    )
    await _until(lambda: lk.held == 1, "the create to reach LiveKit")
    await first.kill()
    with pytest.raises(DispatcherCallError):
        await request  # the gateway sees UNAVAILABLE and answers 503: LiveKit redelivers
    await client.aclose()
    return sent_at


async def _redeliver_until_dispatched(client: DispatcherClient, room: str) -> DispatchAgentResponse:
    """LiveKit's redeliveries of the webhook, reduced to their DispatchAgent calls."""
    while True:
        try:
            return await client.dispatch_agent(room, AGENT, job_metadata(room), timeout=1.0)
        except DispatcherCallError as exc:
            assert exc.code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE), exc
            await asyncio.sleep(0.2)


async def test_in_process_claims_a_create_landing_after_the_crash_is_removed(
    livekit: LiveKitStandIn, processes
) -> None:
    livekit.create_room("crash-room")
    first = processes(_env(livekit, None))
    await _crash_mid_create(livekit, first, "crash-room")

    # The restarted process (same port, empty claims) creates again: the held create
    # has not landed, so nothing shows in ListDispatch.
    second = processes(_env(livekit, None), first.port)
    await second.start()
    client = DispatcherClient(second.target)
    try:
        result = await _redeliver_until_dispatched(client, "crash-room")
        assert not result.already_existed
        assert len(livekit.dispatches("crash-room")) == 1

        livekit.release_held()  # the dead process's create lands now, after the new one
        await _until(lambda: livekit.create_count() == 2, "the held create to land")
        await _until(lambda: len(livekit.dispatches("crash-room")) == 1, "the later dispatch to be removed")
    finally:
        await client.aclose()

    assert livekit.peak_dispatches("crash-room") == 2  # it was doubled, briefly
    [kept] = livekit.dispatches("crash-room")
    assert kept.id == result.dispatch.dispatch_id  # the older one stays, with its agent
    await livekit.settle()
    assert len(livekit.agents("crash-room")) == 1


async def test_redis_claim_outlives_the_crash_until_the_create_has_landed(
    livekit: LiveKitStandIn, processes, redis_prefix: str
) -> None:
    livekit.create_room("crash-redis-room")
    # Another replica on the same Redis, up before the crash, takes the redeliveries.
    other = processes(_env(livekit, redis_prefix))
    await other.start()
    sent_at = await _crash_mid_create(livekit, processes(_env(livekit, redis_prefix)), "crash-redis-room")

    async def land_the_held_create_late() -> None:
        # Past the crashed request's deadline + 1 s (its claim's TTL before the fix) and
        # well inside the settle time: only a claim kept from before the create covers it.
        await asyncio.sleep(max(0.0, sent_at + FIRST_DEADLINE_SECONDS + 1.5 - asyncio.get_running_loop().time()))
        livekit.release_held()

    landing = asyncio.create_task(land_the_held_create_late())
    client = DispatcherClient(other.target)
    try:
        result = await _redeliver_until_dispatched(client, "crash-redis-room")
    finally:
        await client.aclose()
        await landing

    assert result.already_existed  # the crashed process's dispatch, found once it landed
    assert livekit.create_count() == 1
    assert livekit.peak_dispatches("crash-redis-room") == 1
    assert [d.id for d in livekit.dispatches("crash-redis-room")] == [result.dispatch.dispatch_id]
