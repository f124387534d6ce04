"""Converging to one dispatch: when two creates for one call landed anyway, every
replica deletes the same one.

The claim keeps two requests from both creating while the claim store holds it. It
cannot when the claim is gone: an in-process claim dies with a process that crashed
while its CreateDispatch was in flight (the create still lands, after the crash, and
the next request's ListDispatch ran before it did), and while Redis is down each
replica claims in its own process (claims.py, degraded). So after every create the
dispatcher lists the room and deletes every dispatch of its agent but one:

- the one kept is the **oldest** (LiveKit's `created_at`, then the id). Every observer
  agrees on it, whatever subset of the room's dispatches it saw, so two reconcilers
  never delete each other's dispatch and leave none; a dispatch that lands later is
  newer than all it could be compared with, so it is the one removed;
- a dispatch whose job failed (LiveKit never offers it again) is never kept.

A create that lands after ours is invisible to the listing right after ours. Where one
may still come — claims live in this process, it started less than a settle time ago
and the room is older than this process (its predecessor may have died mid-create in
it), or the claim was degraded (another replica may create without seeing our claim) —
the room is listed again, after
`reconcile_interval` and then at doubling intervals, until the settle time has passed
(`watch`): the time the claim design already gives a create to land
(docs/architecture.md, "Exactly one agent").

The same reads, for the settle time after a request failed while its create may still
land, find that create once it lands and has a worker, and hand it to the call history
(`await_late_landing`, late_landings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import KW_ONLY, InitVar, dataclass, field

from services.dispatcher import errors
from services.dispatcher.config import ClaimConfig
from services.dispatcher.jobs import JobConfirmation, Withdrawal
from services.dispatcher.late_landings import MAX_WATCHED, LateLandingReports
from services.dispatcher.livekit_calls import LiveKitCalls
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.transport import DispatchRecord, DispatchTransport

logger = logging.getLogger(__name__)

# Time given to one background round (ListRooms, ListDispatch, DeleteDispatch of any extra).
_ROUND_BUDGET_SECONDS = 5.0
# Rounds looking for a late landing in flight at once. They share the LiveKit connection pool
# with the calls being dispatched, and come in bursts exactly when LiveKit is slow (every
# failed create of a burst awaits its late landing): unbounded, they took the pool's
# connections from the dispatches themselves, and calls got their agent later.
_ROUNDS_AT_ONCE = 4
# How far LiveKit's clock may be ahead of ours, deciding whether a room is older than us.
_CLOCK_SKEW_SECONDS = 1.0


def keeper(dispatches: Iterable[DispatchRecord], agent_name: str) -> DispatchRecord | None:
    """The dispatch of `agent_name` every replica keeps: the oldest whose job did not fail."""
    candidates = [d for d in dispatches if d.agent_name == agent_name and not d.failed]
    return min(candidates, key=lambda d: (d.created_at, d.dispatch_id), default=None)


@dataclass(slots=True, eq=False)
class Reconciler:
    transport: DispatchTransport
    calls: LiveKitCalls
    jobs: JobConfirmation
    config: ClaimConfig
    metrics: DispatcherMetrics
    _: KW_ONLY
    claims_in_process: InitVar[bool]
    # Told of a failed request's create that landed after all (await_late_landing); None: not looked for.
    late: LateLandingReports | None = None
    # Until then a create of a predecessor that crashed mid-create may still land,
    # unseen: its claim died with it. (A Redis claim outlives its holder instead.)
    _young_until: float = field(init=False)
    _started_at: float = field(init=False, default_factory=time.time)
    # (room, agent) -> watch until (monotonic)
    _watches: dict[tuple[str, str], float] = field(init=False, default_factory=dict)
    # (room, agent) -> the job metadata of a failed request's create that may still land
    _late: dict[tuple[str, str], str] = field(init=False, default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _rounds: asyncio.Semaphore = field(init=False, default_factory=lambda: asyncio.Semaphore(_ROUNDS_AT_ONCE))
    # Set by aclose: a request cancelled by the server's stop may ask for a watch after it,
    # which would reopen the closed LiveKit transport and leave it open.
    _closed: bool = field(init=False, default=False)

    def __post_init__(self, claims_in_process: bool) -> None:
        self._young_until = time.monotonic() + (self.config.settle_seconds if claims_in_process else 0.0)

    async def converge(self, room: str, agent_name: str, deadline: float) -> DispatchRecord | None:
        """Lists `room` and deletes every dispatch of `agent_name` but the keeper; the keeper
        as listed now (None: the room holds no live-able dispatch of the agent)."""
        dispatches = await self.calls.run(
            "ListDispatch", room, lambda t: self.transport.list(room, timeout=t), deadline
        )
        return await self.remove_extras(dispatches, agent_name, deadline)

    async def remove_extras(
        self, dispatches: list[DispatchRecord], agent_name: str, deadline: float
    ) -> DispatchRecord | None:
        """Deletes the dispatches of `agent_name` in a listing other than its keeper."""
        kept = keeper(dispatches, agent_name)
        if kept is None:
            return None
        extras = [d for d in dispatches if d.agent_name == agent_name and d.dispatch_id != kept.dispatch_id]
        for extra in extras:
            # Counted and logged by the replica whose delete removed it, once for the cluster.
            if await self.jobs.withdraw(extra, deadline) is Withdrawal.REMOVED:
                if not extra.failed:
                    self.metrics.duplicates_removed.inc()
                logger.warning(
                    "removed %s dispatch %s of %r in room %r; kept the oldest, %s",
                    "failed" if extra.failed else "duplicate",
                    extra.dispatch_id,
                    agent_name,
                    extra.room,
                    kept.dispatch_id,
                )
        return kept

    def watch(self, room: str, agent_name: str, *, degraded: bool, room_created_at: float) -> None:
        """Keep converging the room in the background while a create we cannot see may
        still land into the call (see the module docstring); nothing otherwise. A room
        LiveKit created after this process started held no call of its predecessor."""
        now = time.monotonic()
        inherited = room_created_at < self._started_at + _CLOCK_SKEW_SECONDS
        until = max(
            self._young_until if inherited else 0.0,
            now + self.config.settle_seconds if degraded else 0.0,
        )
        if until > now:
            self._watch_until((room, agent_name), until)

    def await_late_landing(self, room: str, agent_name: str, encoded: str) -> None:
        """A request failed while its create (of metadata `encoded`) may still land: keep
        converging the room for the settle time from now, and once that dispatch is the
        call's keeper and a worker serves it, tell the call history (late_landings.py)."""
        if self.late is None:
            return
        key = (room, agent_name)
        if key not in self._late and len(self._late) >= MAX_WATCHED:
            self.late.not_watched(room)
            return
        self._late[key] = encoded
        self._watch_until(key, time.monotonic() + self.config.settle_seconds)

    def _watch_until(self, key: tuple[str, str], until: float) -> None:
        if self._closed:
            self._late.pop(key, None)
            return
        if key in self._watches:
            self._watches[key] = max(self._watches[key], until)
            return
        self._watches[key] = until
        task = asyncio.get_running_loop().create_task(self._watch(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, key: tuple[str, str]) -> None:
        """Rounds after `reconcile_interval`, then twice as long each time, and one at the
        end of the window: a create landing soon after ours (the likely case) is removed
        within a second or two, a later one within a few, at a handful of reads per call."""
        room, agent_name = key
        loop = asyncio.get_running_loop()
        wait = self.config.reconcile_interval
        try:
            while (left := self._watches[key] - time.monotonic()) > 0:
                await asyncio.sleep(min(wait, left))
                wait *= 2
                try:
                    # Only rounds that look for a late landing wait their turn: those come in
                    # bursts of failed creates; healing doubles keeps its pace.
                    async with self._rounds if key in self._late else contextlib.nullcontext():
                        deadline = loop.time() + _ROUND_BUDGET_SECONDS
                        # ListDispatch on a room that is gone hangs until LiveKit's own deadline.
                        if not await self.calls.run(
                            "ListRooms", room, lambda t: self.transport.room_exists(room, timeout=t), deadline
                        ):
                            return  # the call is over: nothing left to double
                        kept = await self.converge(room, agent_name, deadline)
                except errors.RoomNotFound:
                    return
                except errors.DispatchError as exc:
                    logger.info("could not re-read room %r for duplicate dispatches: %s", room, exc)
                    continue
                late = self._late.get(key)
                if late is not None and kept is not None and kept.metadata == late and kept.live_job is not None:
                    del self._late[key]
                    assert self.late is not None
                    await self.late.report(kept)
        finally:
            del self._watches[key]
            if self._late.pop(key, None) is not None and self.late is not None:
                self.late.none_served()

    def __len__(self) -> int:
        """Rooms being watched."""
        return len(self._watches)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.late is not None:
            await self.late.aclose()
