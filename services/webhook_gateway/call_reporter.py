"""Reports call lifecycle facts to CallHistoryService off the dispatch path. A webhook's
answer to LiveKit must never wait for, or depend on, the call history: `report()` only
puts the event on a bounded queue (a full queue drops it, counted and logged, never
blocking), and background senders deliver it with retries (tenacity). Recording is
idempotent by event id, so a retry after a lost answer does no harm.

    CallReporter.report(event)  → queue (bounded) → senders → CallHistorySink.record
                                   full: dropped{reason="queue_full"}
                                   retries exhausted: dropped{reason="gave_up"}
                                   refused as invalid: dropped{reason="rejected"}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
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
    # On shutdown, how long queued events may still be sent.
    drain_seconds: float = setting("GATEWAY_CALL_EVENTS_DRAIN_SECONDS", 2.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CallReportingConfig:
        return Environment(environ).fields(cls, tls=ClientTLSConfig.from_env("CALLS", environ))


class CallHistorySink(Protocol):
    async def record(self, event: CallEvent, *, timeout: float) -> None:
        """Raises SinkUnavailable (worth retrying) or SinkRejected (never)."""
        ...


class SinkUnavailable(Exception):
    pass


class SinkRejected(Exception):
    pass


class GrpcCallHistory:
    """CallHistoryService.RecordCallEvent over a gRPC channel."""

    def __init__(self, channel: grpc.aio.Channel, token: str | None) -> None:
        self._stub = pb_grpc.CallHistoryServiceStub(channel)
        self._metadata = call_metadata(token=token)

    async def record(self, event: CallEvent, *, timeout: float) -> None:
        try:
            await self._stub.RecordCallEvent(
                pb.RecordCallEventRequest(event=event), timeout=timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            message = f"CallHistoryService: {exc.code().name}: {exc.details()}"
            if exc.code() in RETRYABLE_CODES:
                raise SinkUnavailable(message) from exc
            raise SinkRejected(message) from exc


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

    def report(self, event: CallEvent | None) -> None:
        """Never blocks and never raises: the webhook's answer does not depend on it."""
        if event is None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._metrics.dropped.labels("queue_full").inc()
            logger.warning("call event %s dropped: the reporter's queue is full", event.event_id)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._senders = [
            asyncio.create_task(self._send_forever(), name=f"call-reporter-{n}")
            for n in range(max(1, self._config.senders))
        ]

    async def close(self) -> None:
        """Gives queued events `drain_seconds` to go out, then stops the senders."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self._config.drain_seconds)
        await cancel_and_wait(*self._senders)
        self._senders = []

    async def _send_forever(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._send(event)
            except Exception:  # a sender must outlive any one event
                logger.exception("call event %s could not be sent", event.event_id)
            finally:
                self._queue.task_done()

    async def _send(self, event: CallEvent) -> None:
        config = self._config
        try:
            await self._deliver(event)
        except SinkUnavailable as exc:
            self._metrics.dropped.labels("gave_up").inc()
            logger.warning("call event %s dropped after %d attempts: %s", event.event_id, config.max_attempts, exc)
        except SinkRejected as exc:
            self._metrics.dropped.labels("rejected").inc()
            logger.warning("call event %s refused: %s", event.event_id, exc)
        else:
            self._metrics.sent.inc()

    async def _deliver(self, event: CallEvent) -> None:
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
        await retry_after_first_failure(
            lambda: self._sink.record(event, timeout=config.attempt_timeout_seconds),
            retrying,
            lambda exc: isinstance(exc, SinkUnavailable),
        )
