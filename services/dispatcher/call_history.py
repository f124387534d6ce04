"""CallHistoryService as the dispatcher reports to it (late_landings.py): one event at a
time through RecordCallEvent, which every version of the service answers, retried within
a bounded time. Late landings are rare; nothing here is on a call's path."""

from __future__ import annotations

import asyncio

from friday.calls.v1.call_pb2 import CallEvent
from services.calls.client import CallsCallError, CallsClient
from services.common.retry import call_with_retries, time_left
from services.dispatcher.config import CallHistoryConfig

# A report is given this long, in attempts of at most ATTEMPT_TIMEOUT_SECONDS: long enough to
# outlast a CallHistoryService restart, short enough that reports do not pile up behind one.
REPORT_SECONDS = 30.0
ATTEMPT_TIMEOUT_SECONDS = 2.0
MAX_ATTEMPTS = 8
INITIAL_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0


class GrpcCallHistoryReports:
    def __init__(self, target: str, config: CallHistoryConfig) -> None:
        self._target = target
        self._config = config
        # Opened at the first report, inside the event loop (build_server may run before it).
        self._client: CallsClient | None = None

    @classmethod
    def connect(cls, config: CallHistoryConfig) -> GrpcCallHistoryReports | None:
        """None without a target: late landings are then not reported."""
        return None if config.target is None else cls(config.target, config)

    async def dispatched(self, event: CallEvent) -> None:
        """Raises CallsCallError when the event was refused, or still could not be sent
        when the report's time ran out."""
        deadline = asyncio.get_running_loop().time() + REPORT_SECONDS
        if self._client is None:
            self._client = CallsClient(self._target, token=self._config.token, tls=self._config.tls)
        client = self._client

        async def attempt() -> None:
            await client.record(event, timeout=max(0.01, min(ATTEMPT_TIMEOUT_SECONDS, time_left(deadline))))

        await call_with_retries(
            attempt,
            deadline,
            max_attempts=MAX_ATTEMPTS,
            initial_backoff=INITIAL_BACKOFF_SECONDS,
            max_backoff=MAX_BACKOFF_SECONDS,
            retry_if=lambda exc: isinstance(exc, CallsCallError) and exc.retryable,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
