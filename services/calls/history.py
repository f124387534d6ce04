"""CallHistory: the domain logic between the servicer and the store. Checks and
privatises incoming events, folds them into records (records.fold), keeps the
metrics in step with the records, and runs the sweep that decides overdue calls as
no_agent, counts settled calls and applies retention. It never imports grpc or SQLAlchemy.

friday_calls_total counts each call once, under its final outcome. Events arrive in any
order, so an outcome can change after it was first decided (a caller's leave recorded
before the agent's join that preceded it reads as no_agent until the join lands), and a
counter cannot take a count back. So a call is counted only once it is decided and its
record has not changed for CALLS_SETTLE_SECONDS, by the sweep, marked in the database so
that replicas and restarts count it once (`CallStore.finalise`). It need not have ended:
an outcome comes from LiveKit's timestamps, and no later webhook can move it once the
delivery window has passed, so the count (and the answer time) lags the decision by the
settle time, not by the length of the call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from friday.calls.v1.call_history_service_pb2 import (
    GetCallStatsResponse,
    PersonaStats,
    TimeBucketStats,
)
from friday.calls.v1.call_pb2 import Call, CallEvent, CallEventKind, CallOutcome
from services.calls import errors
from services.calls.config import CallsConfig
from services.calls.metrics import CallsMetrics
from services.calls.outbox import OutboxMessage, changes
from services.calls.records import OUTCOME_LABELS, fold, is_final, private, timestamp_of
from services.calls.stats import call_stats, group
from services.calls.store import CallQuery, CallStore, Recorded
from services.common.background_tasks import cancel_and_wait

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
MAX_EVENT_ID = 200
MAX_ROOM = 256
# Calls counted per store transaction by the sweep.
FINALISE_BATCH = 500


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class CallHistory:
    def __init__(
        self,
        store: CallStore,
        config: CallsConfig,
        metrics: CallsMetrics,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        call_events: bool = False,
    ) -> None:
        """`call_events`: write signed call events to the outbox (CALL_EVENTS_URL is set)."""
        self._store = store
        self._notices = self._changes if call_events else None
        self._config = config
        self._metrics = metrics
        self._clock_ms = clock_ms
        self._sweeper: asyncio.Task[None] | None = None

    def _changes(self, before: Call | None, after: Call) -> list[OutboxMessage]:
        return changes(before, after, self._clock_ms())

    def _fold(self, events: Sequence[CallEvent]) -> Call:
        return fold(events, no_agent_seconds=self._config.no_agent_seconds, now_ms=self._clock_ms())

    async def start(self) -> None:
        await self._store.open()
        await self._recount_in_progress()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="calls-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        await self._store.close()

    async def record(self, event: CallEvent) -> Recorded:
        (result,) = await self.record_many([event])
        if isinstance(result, errors.InvalidEvent):
            raise result
        return result

    async def record_many(self, events: Sequence[CallEvent]) -> list[Recorded | errors.InvalidEvent]:
        """What became of each event, in order: refused on its own (the others are still
        recorded), or recorded, each call's events in one store transaction. A store that
        cannot be reached raises StoreUnavailable."""
        checked: list[CallEvent | errors.InvalidEvent] = []
        for event in events:
            try:
                _check(event)
            except errors.InvalidEvent as exc:
                checked.append(exc)
            else:
                checked.append(private(event, self._config.caller_numbers))
        valid = [event for event in checked if isinstance(event, CallEvent)]
        recorded = await self._store.record(valid, self._clock_ms(), self._fold, self._notices) if valid else []
        # The store ran a transaction per room, rooms in the order they first appear: observe
        # them in that order, so the gauge ends at the count the last transaction read.
        by_room = {event.room: result for event, result in zip(valid, recorded, strict=True)}
        for result in by_room.values():
            self._observe(result)
        answers = iter(recorded)
        return [item if isinstance(item, errors.InvalidEvent) else next(answers) for item in checked]

    def _observe(self, result: Recorded) -> None:
        # The store counts the calls in progress whenever a change starts or ends one.
        if result.in_progress is not None:
            self._metrics.in_progress.set(result.in_progress)

    async def _recount_in_progress(self) -> None:
        """Sets the gauge from the rows themselves (and the count's row too, if a writer past
        the store left it wrong): once per sweep, not per event, as it reads every open call."""
        counted, rows = await self._store.recount_in_progress()
        if counted != rows:
            logger.warning(
                "calls in progress: the count's row said %d, the calls rows say %d; set to %d "
                "(calls written by something that does not keep the count: an older replica?)",
                counted,
                rows,
                rows,
            )
        self._metrics.in_progress.set(rows)

    async def get_call(self, key: str) -> tuple[Call, list[CallEvent]]:
        if not key.strip():
            raise errors.InvalidQuery("name a call: its room or its SIP call id")
        found = await self._store.get_call(key.strip())
        if found is None:
            raise errors.CallNotFound(f"no call with room or SIP call id {key!r}", metadata={"call": key})
        return found

    async def list_calls(self, query: CallQuery) -> list[Call]:
        return await self._store.list_calls(query)

    async def stats(self, start_ms: int | None, end_ms: int | None, bucket_seconds: int) -> GetCallStatsResponse:
        end = end_ms if end_ms is not None else self._clock_ms()
        start = start_ms if start_ms is not None else end - DAY_MS
        if bucket_seconds < 0 or start > end:
            raise errors.InvalidQuery("the time range is empty or the bucket negative")
        bucket_ms = (bucket_seconds or 3600) * 1000
        if (end - start) // bucket_ms > 10_000:
            raise errors.InvalidQuery("more than 10000 buckets: choose a wider bucket or a shorter range")
        calls = await self._store.calls_started_between(start, end)
        grouped = group(calls, bucket_ms)
        return GetCallStatsResponse(
            total=call_stats(calls),
            buckets=[TimeBucketStats(bucket_start=timestamp_of(s), stats=call_stats(c)) for s, c in grouped.buckets],
            personas=[
                PersonaStats(persona_id=pid, persona_version=version, stats=call_stats(c))
                for pid, version, c in grouped.personas
            ],
        )

    async def sweep(self) -> None:
        """Decides calls whose agent is overdue (no_agent), counts decided calls that settled,
        deletes calls past retention and recounts the calls in progress."""
        now = self._clock_ms()
        overdue = await self._store.undecided_rooms(now - round(self._config.no_agent_seconds * 1000))
        for result in await self._store.refold(overdue, self._fold, self._notices):
            self._observe(result)
        await self._count_settled(now)
        if self._config.retention_days > 0:
            deleted = await self._store.delete_older_than(now - round(self._config.retention_days * DAY_MS))
            if deleted:
                logger.info("retention: deleted %d calls older than %s days", deleted, self._config.retention_days)
        await self._recount_in_progress()

    async def _count_settled(self, now: int) -> None:
        settled_by = now - round(self._config.settle_seconds * 1000)
        while True:
            counted = await self._store.finalise(settled_by, now, FINALISE_BATCH)
            for call in counted:
                if not is_final(call):
                    continue  # the store answers decided calls only; a guard against a bad row
                self._metrics.calls.labels(OUTCOME_LABELS[call.outcome]).inc()
                if call.outcome == CallOutcome.CALL_OUTCOME_ANSWERED:
                    self._metrics.answer_seconds.observe(call.answer_seconds)
            if len(counted) < FINALISE_BATCH:
                return

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.sweep_interval_seconds)
            try:
                await self.sweep()
            except errors.StoreUnavailable as exc:
                logger.warning("call history sweep skipped: %s", exc)
            except Exception:  # the sweep must outlive one bad call or a bug
                logger.exception("call history sweep failed")

    async def ping(self) -> bool:
        return await self._store.ping()


def _check(event: CallEvent) -> None:
    if not event.event_id or len(event.event_id) > MAX_EVENT_ID:
        raise errors.InvalidEvent(f"event_id must be 1-{MAX_EVENT_ID} characters")
    if not event.room or len(event.room) > MAX_ROOM:
        raise errors.InvalidEvent(f"room must be 1-{MAX_ROOM} characters", metadata={"event_id": event.event_id})
    if event.kind == CallEventKind.CALL_EVENT_KIND_UNSPECIFIED or event.kind not in CallEventKind.values():
        raise errors.InvalidEvent("kind is required", metadata={"event_id": event.event_id})
    if not event.HasField("occurred_at"):
        raise errors.InvalidEvent("occurred_at is required", metadata={"event_id": event.event_id})
