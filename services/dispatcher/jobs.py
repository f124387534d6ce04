"""A dispatch is not an agent: confirming that a worker took the dispatch's job.

LiveKit's CreateDispatch succeeds whether or not any worker is registered for the
agent name. With none, the server logs "not dispatching agent job since no worker
is available", the dispatch stays listed with an empty `state.jobs` — and it is
never offered again when a worker registers later — while the caller rings until
SIP's ringing timeout. So after a dispatch exists, DispatchAgent reads ListDispatch
until a job shows up live (a worker accepted it) or the job wait runs out.

The reads follow `poll_delays`: the first a few milliseconds after the create (a
registered worker near LiveKit has usually taken the job by then), then each gap
twice the last, up to the longest gap (`JobConfig.poll_interval`), until the job
wait ends; the last read is made at its end.

No live job in time: the dispatcher withdraws the dispatch (DeleteDispatch) and
answers NO_AGENT_WORKER, so LiveKit's redelivery dispatches afresh once a worker is
back. A job that failed at the worker is withdrawn the same way and replaced once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterator

from services.common.retry import time_left
from services.dispatcher import errors
from services.dispatcher.config import JobConfig
from services.dispatcher.livekit_calls import LiveKitCalls
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.transport import DispatchRecord, DispatchTransport

logger = logging.getLogger(__name__)

# Time kept back from the caller's deadline to withdraw a dispatch nobody took.
WITHDRAW_RESERVE_SECONDS = 0.25
# Each gap between two reads is this many times the last, up to the longest gap.
POLL_BACKOFF_FACTOR = 2.0
# A first gap configured as zero or less would read LiveKit in a tight loop.
MIN_POLL_SECONDS = 0.001


def poll_delays(config: JobConfig) -> Iterator[float]:
    """The gaps before each ListDispatch read of one job wait, endless (the caller stops
    at the wait's end): `first_poll`, then doubling, capped at `poll_interval`.

    A small generator rather than tenacity's waits: this is a poll with three outcomes
    (live, failed, not yet) on every dispatch's path, not a retry of a failure, and it
    needs no per-attempt bookkeeping. Calls arrive at independent moments, so their
    reads are already spread out and need no jitter."""
    longest = max(config.poll_interval, MIN_POLL_SECONDS)
    delay = min(max(config.first_poll, MIN_POLL_SECONDS), longest)
    while True:
        yield delay
        delay = min(delay * POLL_BACKOFF_FACTOR, longest)


class Withdrawal(enum.Enum):
    """What a DeleteDispatch did. Two replicas converging on one room may both delete
    the same extra dispatch: the second finds it already gone, and only the first
    removed it."""

    REMOVED = "removed"
    ALREADY_GONE = "already_gone"  # not_found: another delete (another replica's) came first
    FAILED = "failed"

    @property
    def gone(self) -> bool:
        """LiveKit no longer holds the dispatch."""
        return self is not Withdrawal.FAILED


class JobFailed(Exception):
    """The dispatch's job ended without serving the call (the worker failed or rejected it)."""

    def __init__(self, record: DispatchRecord) -> None:
        how = ", ".join(f"{job.status} {job.error}".strip() for job in record.jobs)
        super().__init__(f"the job of dispatch {record.dispatch_id} ended without serving the call ({how})")
        self.record = record


class JobConfirmation:
    def __init__(
        self, transport: DispatchTransport, calls: LiveKitCalls, config: JobConfig, metrics: DispatcherMetrics
    ) -> None:
        self._transport = transport
        self._calls = calls
        self._config = config
        self._metrics = metrics

    async def await_job(
        self, record: DispatchRecord, deadline: float, *, room: list[DispatchRecord] | None = None
    ) -> DispatchRecord | None:
        """`record` as ListDispatch shows it once its job is live, or None when no
        worker took it within the job wait (or the dispatch vanished). Raises JobFailed;
        raises LiveKitUnavailable when the last reads failed, since then nobody knows
        whether a worker took it (the dispatch must stay for a retry to find).
        `room`, when given, is filled with the last ListDispatch answer read (all the
        room's dispatches), so the caller can look for doubles without reading again."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        wait_until = min(started + self._config.wait_seconds, deadline - WITHDRAW_RESERVE_SECONDS)
        current: DispatchRecord | None = record
        unreadable: errors.DispatchError | None = None
        delays = poll_delays(self._config)
        while current is not None:
            if current.live_job is not None:
                self._metrics.job_wait.observe(loop.time() - started)
                return current
            if current.failed:
                raise JobFailed(current)
            remaining = time_left(wait_until)
            if remaining <= 0:
                break
            # The last gap is cut to the wait's end, so the last read is made there.
            await asyncio.sleep(min(next(delays), remaining))
            try:
                listing = await self._list(record, deadline)
                current = next((d for d in listing if d.dispatch_id == record.dispatch_id), None)
                if room is not None:
                    room[:] = listing
                unreadable = None
            except (errors.LiveKitUnavailable, errors.LiveKitRateLimited) as exc:
                unreadable = exc  # the next poll may get through
        if unreadable is not None:
            raise errors.LiveKitUnavailable(
                f"could not read whether a worker took the job of dispatch {record.dispatch_id}: {unreadable}",
                metadata=unreadable.metadata,
            ) from unreadable
        return None

    def no_worker(self, record: DispatchRecord, *, withdrawn: bool) -> errors.NoAgentWorker:
        """Counts and logs the silent failure that rings a caller out, and the error to answer."""
        self._metrics.no_worker.inc()
        logger.error(
            "no agent worker took the job of dispatch %s (agent %r, room %r) within %.2fs; %s. Is a worker "
            "running and registered with agent_name=%r (AGENT_TO_DISPATCH)?",
            record.dispatch_id,
            record.agent_name,
            record.room,
            self._config.wait_seconds,
            "withdrawn" if withdrawn else "withdrawing it failed",
            record.agent_name,
        )
        return errors.NoAgentWorker(
            f"no agent worker took the job for agent {record.agent_name!r} in room {record.room!r} in time; "
            "the dispatch was withdrawn, a retry dispatches again",
            metadata={"agent_name": record.agent_name, "room": record.room, "dispatch_id": record.dispatch_id},
        )

    async def withdraw(self, record: DispatchRecord, deadline: float) -> Withdrawal:
        """DeleteDispatch (LiveKit ends its jobs), and what it did."""
        try:
            await self._calls.run(
                "DeleteDispatch",
                record.room,
                lambda t: self._transport.delete(record.room, record.dispatch_id, timeout=t),
                deadline,
            )
        except errors.DispatchNotFound:
            return Withdrawal.ALREADY_GONE
        except errors.DispatchError as exc:
            logger.warning("could not withdraw dispatch %s from %r: %s", record.dispatch_id, record.room, exc)
            return Withdrawal.FAILED
        return Withdrawal.REMOVED

    async def _list(self, record: DispatchRecord, deadline: float) -> list[DispatchRecord]:
        """The room's dispatches as ListDispatch shows them now."""
        return await self._calls.run(
            "ListDispatch", record.room, lambda t: self._transport.list(record.room, timeout=t), deadline
        )
