"""Reports call lifecycle facts to CallHistoryService off the dispatch path. A webhook's
answer to LiveKit must never wait for, or depend on, the call history: `report()` only
puts the event on a bounded queue (a full queue drops it, counted and logged, never
blocking), and background senders deliver it with retries (tenacity). Recording is
idempotent by event id, so a retry after a lost answer does no harm.

A sender takes an event, lingers up to `linger_seconds` for more (less once `max_batch`
are waiting, or the reporter is closing), and sends what it has, up to `max_batch`, in one
RecordCallEvents call. Each call wakes CallHistoryService and costs it a transaction
set-up, whatever it carries: at a call every few milliseconds, one call per event was most
of that service's CPU, and a tenth of a second late is nothing to a call history. One
sender gathers at a time, so the others do not split a burst between them. A
CallHistoryService older than RecordCallEvents (a rolling update) answers UNIMPLEMENTED;
the sink then sends one RecordCallEvent per event from there on.

    CallReporter.report(event)  → queue (bounded) → senders → CallHistorySink.record(batch)
                                   full: dropped{reason="queue_full"}
                                   retries exhausted: dropped{reason="gave_up"}
                                   refused as invalid: dropped{reason="rejected"}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1 import call_history_service_pb2_grpc as pb_grpc
from friday.calls.v1.call_pb2 import CallEvent
from services.common.background_tasks import cancel_and_wait
from services.common.env import Environment, setting
from services.common.retry import retry_after_first_failure
from services.grpc_runtime import RETRYABLE_CODES, ClientTLSConfig, call_metadata

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallReportingConfig:
    # CallHistoryService; None = calls are not reported (the gateway works the same).
    target: str | None = setting("CALLS_TARGET", None)
    token: str | None = setting("CALLS_TOKEN", None, secret=True)
    tls: ClientTLSConfig | None = None
    # Events waiting to be sent. Past this, new events are dropped rather than held:
    # memory stays bounded while CallHistory is down.
    queue_size: int = setting("GATEWAY_CALL_EVENTS_QUEUE_SIZE", 10_000)
    max_attempts: int = setting("GATEWAY_CALL_EVENTS_MAX_ATTEMPTS", 5)
    attempt_timeout_seconds: float = setting("GATEWAY_CALL_EVENTS_ATTEMPT_TIMEOUT_SECONDS", 2.0)
    initial_backoff_seconds: float = setting("GATEWAY_CALL_EVENTS_INITIAL_BACKOFF_SECONDS", 0.2)
    max_backoff_seconds: float = setting("GATEWAY_CALL_EVENTS_MAX_BACKOFF_SECONDS", 5.0)
    senders: int = setting("GATEWAY_CALL_EVENTS_SENDERS", 4)
    # Events one RecordCallEvents call may carry (at most 500, the call's own bound).
    max_batch: int = setting("GATEWAY_CALL_EVENTS_MAX_BATCH", 100)
    # How long a sender holding one event waits for more before it sends; 0 = at once.
    linger_seconds: float = setting("GATEWAY_CALL_EVENTS_LINGER_SECONDS", 0.1, not_negative=True)
    # On shutdown, how long queued events may still be sent.
    drain_seconds: float = setting("GATEWAY_CALL_EVENTS_DRAIN_SECONDS", 2.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CallReportingConfig:
        return Environment(environ).fields(cls, tls=ClientTLSConfig.from_env("CALLS", environ))


# RecordCallEvents refuses a request of more events than this.
MAX_BATCH = 500


@dataclass(frozen=True)
class Refusal:
    """One event of a batch that CallHistoryService refused as invalid: never worth a retry."""

    event_id: str
    message: str


class CallHistorySink(Protocol):
    async def record(self, events: Sequence[CallEvent], *, timeout: float) -> list[Refusal]:
        """Records the events and answers those refused one by one. Raises SinkUnavailable
        (worth retrying the whole batch) or SinkRejected (the whole batch refused)."""
        ...


class SinkUnavailable(Exception):
    pass


class SinkRejected(Exception):
    pass


class GrpcCallHistory:
    """CallHistoryService.RecordCallEvents over a gRPC channel; RecordCallEvent per event
    once the service has said it has no RecordCallEvents."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None) -> None:
        self._stub = pb_grpc.CallHistoryServiceStub(channel)
        self._metadata = call_metadata(token=token)
        self._batches = True

    async def record(self, events: Sequence[CallEvent], *, timeout: float) -> list[Refusal]:
        if self._batches:
            try:
                response = await self._stub.RecordCallEvents(
                    pb.RecordCallEventsRequest(events=events), timeout=timeout, metadata=self._metadata
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise _sink_error(exc) from exc
                # Several senders may learn it at once: say it once.
                if self._batches:
                    logger.warning("CallHistoryService has no RecordCallEvents (an older version): one call per event")
                self._batches = False
            else:
                return [
                    Refusal(result.event_id, f"{result.error_reason}: {result.error_message}")
                    for result in response.results
                    if result.error_reason
                ]
        return [refusal for event in events if (refusal := await self._record_one(event, timeout)) is not None]

    async def _record_one(self, event: CallEvent, timeout: float) -> Refusal | None:
        try:
            await self._stub.RecordCallEvent(
                pb.RecordCallEventRequest(event=event), timeout=timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            error = _sink_error(exc)
            if isinstance(error, SinkRejected):
                return Refusal(event.event_id, str(error))
            raise error from exc
        return None


def _sink_error(exc: grpc.aio.AioRpcError) -> SinkUnavailable | SinkRejected:
    message = f"CallHistoryService: {exc.code().name}: {exc.details()}"
    return SinkUnavailable(message) if exc.code() in RETRYABLE_CODES else SinkRejected(message)


class CallReporterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "friday_call_events_dropped",
            "Call events the gateway did not deliver to CallHistoryService, by reason: queue_full "
            "(the reporter's queue was full), gave_up (retries exhausted), rejected (refused as invalid).",
            ["reason"],
            registry=registry,
        )
        self.sent = Counter(
            "friday_call_events_sent",
            "Call events CallHistoryService acknowledged.",
            registry=registry,
        )
        for reason in ("queue_full", "gave_up", "rejected"):
            self.dropped.labels(reason)


class CallReporter:
    def __init__(self, sink: CallHistorySink, config: CallReportingConfig, metrics: CallReporterMetrics) -> None:
        self._sink = sink
        self._config = config
        self._metrics = metrics
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue(maxsize=max(1, config.queue_size))
        self._senders: list[asyncio.Task[None]] = []
        self._max_batch = max(1, min(config.max_batch, MAX_BATCH))
        # Held by the one sender gathering a batch; `_enough` ends its linger early.
        self._gathering = asyncio.Lock()
        self._enough = asyncio.Event()
        self._closing = False

    def report(self, event: CallEvent | None) -> None:
        """Never blocks and never raises: the webhook's answer does not depend on it."""
        if event is None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._metrics.dropped.labels("queue_full").inc()
            logger.warning("call event %s dropped: the reporter's queue is full", event.event_id)
            return
        # With the one a lingering sender holds, a whole batch is here: no reason to wait.
        if self._queue.qsize() + 1 >= self._max_batch:
            self._enough.set()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._senders = [
            asyncio.create_task(self._send_forever(), name=f"call-reporter-{n}")
            for n in range(max(1, self._config.senders))
        ]

    async def close(self) -> None:
        """Gives queued events `drain_seconds` to go out (no sender lingers from here
        on), then stops the senders."""
        self._closing = True
        self._enough.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self._config.drain_seconds)
        await cancel_and_wait(*self._senders)
        self._senders = []

    async def _next_batch(self) -> list[CallEvent]:
        async with self._gathering:
            batch = [await self._queue.get()]
            linger = self._config.linger_seconds
            if linger > 0 and not self._closing and self._queue.qsize() + 1 < self._max_batch:
                self._enough.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(linger):
                        await self._enough.wait()
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            return batch

    async def _send_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._send(batch)
            except Exception:  # a sender must outlive any one batch
                logger.exception("%d call events from %s could not be sent", len(batch), batch[0].event_id)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[CallEvent]) -> None:
        config = self._config
        first = batch[0].event_id
        try:
            refusals = await self._deliver(batch)
        except SinkUnavailable as exc:
            self._metrics.dropped.labels("gave_up").inc(len(batch))
            logger.warning(
                "%d call events from %s dropped after %d attempts: %s", len(batch), first, config.max_attempts, exc
            )
            return
        except SinkRejected as exc:
            self._metrics.dropped.labels("rejected").inc(len(batch))
            logger.warning("%d call events from %s refused: %s", len(batch), first, exc)
            return
        for refusal in refusals:
            logger.warning("call event %s refused: %s", refusal.event_id, refusal.message)
        if refusals:
            self._metrics.dropped.labels("rejected").inc(len(refusals))
        if len(batch) > len(refusals):
            self._metrics.sent.inc(len(batch) - len(refusals))

    async def _deliver(self, batch: list[CallEvent]) -> list[Refusal]:
        config = self._config

        def retrying() -> AsyncRetrying:
            return AsyncRetrying(
                stop=stop_after_attempt(max(1, config.max_attempts)),
                wait=wait_exponential(min=config.initial_backoff_seconds, max=config.max_backoff_seconds),
                retry=retry_if_exception_type(SinkUnavailable),
                reraise=True,
            )

        # Almost every event is acknowledged at once: building the retrying machinery
        # per event was most of the reporter's own CPU, so only a failure builds it.
        return await retry_after_first_failure(
            lambda: self._sink.record(batch, timeout=config.attempt_timeout_seconds),
            retrying,
            lambda exc: isinstance(exc, SinkUnavailable),
        )
