"""The exactly-one algorithm: for one call and agent name, LiveKit ends up holding one
dispatch, however many times, concurrently or at however many replicas the request
arrives, and when a dispatcher crashes with its create in flight.

    local lock (this process) → claim (in memory or Redis SET NX; in process, counted as
    degraded, while Redis is unreachable; TTL ≥ the settle time before any create is sent)
      claimed by us   → ListRooms ∥ ListDispatch: the room is gone (the call ended) →
                        ROOM_NOT_FOUND, nothing created; agent there with a live job? →
                        return the oldest, delete any other (reconcile.py), already_existed
                        a dispatch without one (its job failed, or no worker ever took
                        it: LiveKit never offers it again) → withdraw it, then as new
                        CreateDispatch, retried only after failures proving it
                        created nothing (a Twirp error from LiveKit, connection refused).
                        After an ambiguous failure (timeout, dropped connection, proxy
                        5xx, unreadable 200) it may still land: never create again, poll
                        ListDispatch for it until the deadline (found → ours, created),
                        else answer UNAVAILABLE — a redelivery finds it; if none
                        comes, the call history is told when it lands (late_landings.py).
                        → wait for a worker to take the job (jobs.py); none in time →
                          withdraw, NO_AGENT_WORKER; the job failed → replace once
                        → list the room again: two creates landed → keep the oldest,
                          delete the rest; keep re-reading in the background while a
                          create we cannot see may still land (degraded claim, young process)
                        → whenever a create may have landed (success, ambiguous failure,
                          cancellation, crash) keep the claim `settle_seconds` so no other
                          request creates before LiveKit's answer settles; else release
      claimed elsewhere → poll ListDispatch until the dispatch appears with a live job (already_existed)
                          or the claim frees up (its holder failed or died: TTL), all
                          within our deadline

CreateDispatch is not idempotent in LiveKit; this module is why Friday's DispatchAgent is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from services.common.retry import time_left
from services.dispatcher import errors, validation
from services.dispatcher.claims import CallClaims, Claim, LocalLocks, claim_key
from services.dispatcher.config import DispatcherConfig
from services.dispatcher.jobs import JobConfirmation, JobFailed
from services.dispatcher.late_landings import CallHistoryReports, LateLandingReports
from services.dispatcher.livekit_calls import LiveKitCalls
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.reconcile import Reconciler, keeper
from services.dispatcher.transport import DispatchRecord, DispatchTransport, LiveKitCallError

logger = logging.getLogger(__name__)

# A claim outlives its holder's deadline by at least this much (and lives at least the
# settle time), covering clock skew between replicas and the holder's last request.
CLAIM_GRACE_SECONDS = 1.0
# Trunks remembered at most (see trunk_numbers).
_MAX_CACHED_TRUNKS = 1024
# Time one more wait round needs after its sleep: a claim attempt plus a ListDispatch.
_MIN_POLL_ROUND_SECONDS = 0.1


@dataclass
class _CreateState:
    claim: Claim
    room_created_at: float = 0.0  # Unix seconds, LiveKit's clock
    # True once a CreateDispatch was sent whose failure does not prove it did nothing
    # (or whose answer we never saw: cancelled, crashed): it may still create an agent.
    maybe_landed: bool = False


@dataclass(frozen=True)
class DispatchOutcome:
    dispatch: DispatchRecord
    already_existed: bool


class Dispatcher:
    def __init__(
        self,
        transport: DispatchTransport,
        claims: CallClaims,
        config: DispatcherConfig,
        metrics: DispatcherMetrics,
        *,
        report_livekit_health: Callable[[bool], Awaitable[None]] | None = None,
        call_history: CallHistoryReports | None = None,
    ) -> None:
        self._transport = transport
        self._claims = claims
        self._config = config
        self._metrics = metrics
        self._calls = LiveKitCalls(config.retry, metrics, report_livekit_health)
        self._jobs = JobConfirmation(transport, self._calls, config.jobs, metrics)
        self._reconciler = Reconciler(
            transport,
            self._calls,
            self._jobs,
            config.claims,
            metrics,
            claims_in_process=claims.in_process,
            late=LateLandingReports(call_history, metrics) if call_history is not None else None,
        )
        self._trunks: dict[str, tuple[float, list[str]]] = {}
        self._locks = LocalLocks()
        self._settling: set[asyncio.Future[None]] = set()

    async def aclose(self) -> None:
        # Claim keeps/releases of cancelled requests finish before the store closes.
        await asyncio.gather(*self._settling, return_exceptions=True)
        await self._reconciler.aclose()
        await self._transport.aclose()
        await self._claims.aclose()

    async def dispatch_agent(
        self, room: str, agent_name: str, metadata: AgentJobMetadata, deadline: float
    ) -> DispatchOutcome:
        encoded = validation.validate_dispatch(room, agent_name, metadata)
        key = claim_key(room, agent_name)
        async with self._locks.hold(key, deadline) as acquired:
            if not acquired:
                raise errors.DispatchInProgress(
                    f"another request for this call is still dispatching {agent_name!r} to {room!r}"
                )
            return await self._dispatch_once(key, room, agent_name, encoded, deadline)

    async def list_dispatches(self, room: str, deadline: float) -> list[DispatchRecord]:
        validation.validate_room(room)
        return await self._calls.run("ListDispatch", room, lambda t: self._transport.list(room, timeout=t), deadline)

    async def cancel_dispatch(self, room: str, dispatch_id: str, deadline: float) -> DispatchRecord:
        validation.validate_room(room)
        validation.validate_dispatch_id(dispatch_id)
        return await self._calls.run(
            "DeleteDispatch", room, lambda t: self._transport.delete(room, dispatch_id, timeout=t), deadline
        )

    async def trunk_numbers(self, trunk_id: str, deadline: float) -> list[str]:
        """The numbers of a SIP inbound trunk, remembered for `jobs.trunk_cache_seconds`
        (trunks change by configuration, while a burst of hidden-number calls would
        otherwise ask LiveKit once per call)."""
        validation.validate_trunk_id(trunk_id)
        now = asyncio.get_running_loop().time()
        cached = self._trunks.get(trunk_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        numbers = await self._calls.run(
            "ListSIPInboundTrunk", trunk_id, lambda t: self._transport.trunk_numbers(trunk_id, timeout=t), deadline
        )
        if numbers is None:
            raise errors.TrunkNotFound(
                f"LiveKit has no SIP inbound trunk {trunk_id!r}", metadata={"trunk_id": trunk_id}
            )
        if len(self._trunks) >= _MAX_CACHED_TRUNKS:
            self._trunks.clear()  # trunk ids come from LiveKit's own attributes; bound the cache anyway
        self._trunks[trunk_id] = (now + self._config.jobs.trunk_cache_seconds, numbers)
        return numbers

    async def _require_room(self, room: str, deadline: float) -> float:
        """The room must still exist: ListDispatch on a missing room hangs until LiveKit's
        own deadline, and CreateDispatch would create the room anew and send an agent
        into it with nobody there. When LiveKit created it (Unix seconds)."""
        created_at = await self._calls.run(
            "ListRooms", room, lambda t: self._transport.room_created_at(room, timeout=t), deadline
        )
        if created_at is None:
            raise errors.RoomNotFound(
                f"room {room!r} does not exist (any more): the call has ended", metadata={"room": room}
            )
        return created_at

    async def _list_in_room(self, room: str, deadline: float) -> tuple[list[DispatchRecord], float]:
        """The room check and the claim's ListDispatch side by side: one LiveKit round
        trip instead of two on every call. A gone room cancels the listing, which would
        otherwise hang until LiveKit's own deadline."""
        listing = asyncio.ensure_future(self._list(room, deadline))
        try:
            created_at = await self._require_room(room, deadline)
        except BaseException:
            listing.cancel()
            await asyncio.gather(listing, return_exceptions=True)
            raise
        return await listing, created_at

    async def _dispatch_once(
        self, key: str, room: str, agent_name: str, encoded: str, deadline: float
    ) -> DispatchOutcome:
        waited = False
        while True:
            # At least the settle time, from before the create is sent: a holder that dies
            # with its create in flight keeps everyone off the call until it has landed.
            ttl = max(time_left(deadline) + CLAIM_GRACE_SECONDS, self._config.claims.settle_seconds)
            claim = await self._claims.acquire(key, ttl)
            if claim is not None:
                return await self._dispatch_claimed(claim, room, agent_name, encoded, deadline)
            # Someone else holds the call: its dispatch shows up in ListDispatch when done.
            if not waited:
                waited = True
                self._metrics.claim_waits.inc()
            existing = await self._find(room, agent_name, deadline)
            if existing is not None and existing.live_job is not None:
                return DispatchOutcome(existing, already_existed=True)
            poll = self._config.claims.poll_interval
            # Stop while there is still time to say why, rather than running out mid-list.
            if time_left(deadline) < poll + _MIN_POLL_ROUND_SECONDS:
                raise errors.DispatchInProgress(
                    f"dispatch of {agent_name!r} to {room!r} is in progress elsewhere and did not appear in time"
                )
            await asyncio.sleep(poll)

    async def _dispatch_claimed(
        self, claim: Claim, room: str, agent_name: str, encoded: str, deadline: float
    ) -> DispatchOutcome:
        create = _CreateState(claim)
        try:
            dispatches, create.room_created_at = await self._list_in_room(room, deadline)
            existing = keeper(dispatches, agent_name)
            if existing is not None and existing.live_job is not None:
                await self._reconciler.remove_extras(dispatches, agent_name, deadline)
                outcome = DispatchOutcome(existing, already_existed=True)
            else:
                for leftover in (d for d in dispatches if d.agent_name == agent_name):
                    # Nothing serves it, and LiveKit will not offer it again: replace it.
                    if leftover.failed:
                        self._metrics.failed_jobs.inc()
                    why = "its job failed" if leftover.failed else "no worker holds its job"
                    logger.warning("replacing dispatch %s in %r: %s", leftover.dispatch_id, room, why)
                    await self._withdraw(leftover, deadline, create)
                record, listing = await self._create_served(claim, room, agent_name, encoded, deadline, create)
                outcome = await self._one_left(record, listing, agent_name, deadline, create)
        except BaseException:
            # Also on cancellation (the caller's deadline fired first) and on bugs: a
            # create that may still land keeps the claim for the settle time from now,
            # else the claim would lapse at the TTL it was taken with, which a slow
            # request may have used up, and a redelivery's ListDispatch could miss the
            # landing create. If no redelivery comes, the call history still hears of it.
            if create.maybe_landed:
                self._reconciler.await_late_landing(room, agent_name, encoded)
            await self._settle_claim(claim, keep=create.maybe_landed)
            raise
        # Our create: keep the claim so a lagging ListDispatch elsewhere cannot lead to
        # a second create. Someone else's dispatch: nothing of ours is in flight.
        await self._settle_claim(claim, keep=not outcome.already_existed or create.maybe_landed)
        if not outcome.already_existed:
            logger.info("created dispatch %s of %r to room %r", outcome.dispatch.dispatch_id, agent_name, room)
        return outcome

    async def _one_left(
        self,
        record: DispatchRecord,
        listing: list[DispatchRecord],
        agent_name: str,
        deadline: float,
        create: _CreateState,
    ) -> DispatchOutcome:
        """After our create is served: from a listing of the room read after it (the job
        confirmation's, else a new one) delete any other dispatch of the agent, keeping the
        oldest (reconcile.py). Ours is the usual keeper; when an older one landed meanwhile
        ours is the one removed, and the call is the older one's."""
        try:
            if any(d.dispatch_id == record.dispatch_id for d in listing):
                kept = await self._reconciler.remove_extras(listing, agent_name, deadline)
            else:
                kept = await self._reconciler.converge(record.room, agent_name, deadline)
        except errors.DispatchError as exc:
            # Ours is served; a double, if any, is healed by the next listing.
            logger.info("could not re-read room %r after creating %s: %s", record.room, record.dispatch_id, exc)
            return DispatchOutcome(record, already_existed=False)
        if kept is None or kept.dispatch_id == record.dispatch_id:
            return DispatchOutcome(kept or record, already_existed=False)
        if kept.live_job is None:
            try:
                served = await self._jobs.await_job(kept, deadline)
            except JobFailed as failed:
                await self._withdraw(failed.record, deadline, create)
                raise errors.NoAgentWorker(
                    f"{failed}; the dispatch was withdrawn", metadata={"room": kept.room, "agent_name": agent_name}
                ) from failed
            if served is None:
                await self._withdraw(kept, deadline, create)
                raise self._jobs.no_worker(kept, withdrawn=True)
            kept = served
        return DispatchOutcome(kept, already_existed=True)

    async def _create_served(
        self, claim: Claim, room: str, agent_name: str, encoded: str, deadline: float, state: _CreateState
    ) -> tuple[DispatchRecord, list[DispatchRecord]]:
        """CreateDispatch, then wait for a worker to take the job; a job that fails at
        the worker is withdrawn and replaced once. Also the room's last listing read."""
        for attempt in range(2):
            # Every create is covered by the settle time from before it is sent (the
            # replacement too, which comes a job wait after the claim was taken).
            await self._claims.keep(claim, self._config.claims.settle_seconds)
            record = await self._create(room, agent_name, encoded, deadline, state)
            listing: list[DispatchRecord] = []
            try:
                served = await self._jobs.await_job(record, deadline, room=listing)
            except JobFailed as failed:
                self._metrics.failed_jobs.inc()
                logger.warning("%s; withdrawing it%s", failed, "" if attempt else " and dispatching once more")
                await self._withdraw(failed.record, deadline, state)
                if attempt or state.maybe_landed:
                    raise errors.NoAgentWorker(
                        f"{failed}; the dispatch was withdrawn", metadata={"room": room, "agent_name": agent_name}
                    ) from failed
                continue
            if served is None:
                await self._withdraw(record, deadline, state)
                raise self._jobs.no_worker(record, withdrawn=not state.maybe_landed)
            return served, listing
        raise AssertionError("unreachable")  # pragma: no cover

    async def _withdraw(self, record: DispatchRecord, deadline: float, state: _CreateState) -> None:
        if (await self._jobs.withdraw(record, deadline)).gone:
            state.maybe_landed = False

    async def _create(
        self, room: str, agent_name: str, encoded: str, deadline: float, state: _CreateState
    ) -> DispatchRecord:
        """CreateDispatch, sent again only after failures that prove nothing was created.
        After an ambiguous failure (see `LiveKitCallError.may_have_landed`) we never
        create again in this request: we watch ListDispatch for our create to land."""

        # Before it is sent, so it holds however this request ends (its caller giving up
        # mid-create, say): another create we cannot see may land into this call.
        self._reconciler.watch(room, agent_name, degraded=state.claim.degraded, room_created_at=state.room_created_at)

        async def attempt(timeout: float) -> DispatchRecord:
            landed_before = state.maybe_landed
            state.maybe_landed = True  # until LiveKit's answer proves otherwise
            try:
                return await self._transport.create(room, agent_name, encoded, timeout=timeout)
            except LiveKitCallError as exc:
                if not exc.may_have_landed:
                    state.maybe_landed = landed_before
                raise

        try:
            return await self._calls.run(
                "CreateDispatch", room, attempt, deadline, may_retry=lambda exc: not exc.may_have_landed
            )
        except errors.DispatchError as exc:
            if not state.maybe_landed:
                raise  # LiveKit refused every attempt: nothing was created
            failure = exc
        logger.warning(
            "CreateDispatch of %r to %r may have landed (%s); watching ListDispatch", agent_name, room, failure
        )
        landed = await self._await_landing(room, agent_name, deadline)
        if landed is None:
            raise errors.LiveKitUnavailable(
                f"CreateDispatch of {agent_name!r} to {room!r} got no clear answer ({failure}) and the dispatch "
                "did not show up in time; it may still land, so it is not created again now: a retry will find it",
                metadata=failure.metadata,
            ) from failure
        # It was our own create that landed: already_existed=False, as if it had answered.
        return landed

    async def _await_landing(self, room: str, agent_name: str, deadline: float) -> DispatchRecord | None:
        """Polls ListDispatch until the dispatch appears (it) or the deadline nears (None)."""
        poll = self._config.claims.poll_interval
        while time_left(deadline) >= _MIN_POLL_ROUND_SECONDS:
            try:
                ours = [d for d in await self._list(room, deadline) if d.agent_name == agent_name]
            except (errors.LiveKitUnavailable, errors.LiveKitRateLimited):
                ours = []  # the next poll may get through
            # Even one whose job already failed: that is for the job confirmation to say.
            found = min(ours, key=lambda d: (d.created_at, d.dispatch_id), default=None)
            if found is not None:
                return found
            if time_left(deadline) < poll + _MIN_POLL_ROUND_SECONDS:
                break
            await asyncio.sleep(poll)
        return None

    async def _settle_claim(self, claim: Claim, *, keep: bool) -> None:
        """Keep (settle time) or release the claim, shielded: it must happen even when this
        request is being cancelled, or the claim silently falls back to its short TTL."""
        if keep:
            op = self._claims.keep(claim, self._config.claims.settle_seconds)
        else:
            op = self._claims.release(claim)
        task = asyncio.ensure_future(op)
        self._settling.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def _list(self, room: str, deadline: float) -> list[DispatchRecord]:
        return await self._calls.run("ListDispatch", room, lambda t: self._transport.list(room, timeout=t), deadline)

    async def _find(self, room: str, agent_name: str, deadline: float) -> DispatchRecord | None:
        """The call's dispatch as every replica picks it when there are several (the oldest)."""
        return keeper(await self._list(room, deadline), agent_name)
