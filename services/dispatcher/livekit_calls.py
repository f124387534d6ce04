"""LiveKit requests with retries inside the caller's deadline, timed and counted, and
LiveKit's answers translated into the dispatcher's domain errors (the one place that
knows what a Twirp error means for us)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState

from services.common.retry import MIN_ATTEMPT_SECONDS, call_with_retries, time_left
from services.dispatcher import errors
from services.dispatcher.config import RetryConfig
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.transport import LiveKitCallError
from services.grpc_runtime.metrics import LabelledChildren

T = TypeVar("T")
logger = logging.getLogger(__name__)

# The LiveKit service of each method the dispatcher calls (for messages).
_SERVICE_OF = {"ListRooms": "RoomService", "ListSIPInboundTrunk": "SIP"}


def to_domain_error(exc: LiveKitCallError, *, method: str, room: str) -> errors.DispatchError:
    """Map LiveKit's final answer to a domain error. Retryable failures only reach here
    once retries are exhausted."""
    meta = {"livekit_code": exc.code, "livekit_status": str(exc.status or ""), "method": method, "room": room}
    code, status = exc.code, exc.status
    if code == "malformed" and status is not None and status < 400:
        # Not Twirp's `malformed` (a 400 about our request): a success we could not read.
        return errors.LiveKitInternal(
            f"LiveKit {method} answered something that is not a LiveKit reply (is LIVEKIT_URL LiveKit?): {exc.message}",
            metadata=meta,
        )
    if code in ("unauthenticated", "permission_denied") or status in (401, 403):
        return errors.LiveKitRejectedCredentials(
            f"LiveKit refused the dispatcher's API key/secret ({code}): {exc.message}", metadata=meta
        )
    # bad_route: a Twirp server without this method; a plain 404 without a Twirp body:
    # LIVEKIT_URL points at something that is not LiveKit (or at a wrong path).
    if code in ("bad_route", "unimplemented") or status == 501 or (status == 404 and code == "unknown"):
        service = _SERVICE_OF.get(method, "AgentDispatchService")
        return errors.LiveKitPrecondition(
            f"LIVEKIT_URL does not serve {service}.{method} ({code}): {exc.message}",
            reason="LIVEKIT_MISCONFIGURED",
            metadata=meta,
        )
    if code == "not_found":
        if method == "DeleteDispatch":
            return errors.DispatchNotFound(
                f"LiveKit has no such dispatch in room {room!r}: {exc.message}", metadata=meta
            )
        return errors.RoomNotFound(f"LiveKit has no room {room!r}: {exc.message}", metadata=meta)
    if code in ("invalid_argument", "malformed", "out_of_range"):
        return errors.LiveKitRejectedRequest(f"LiveKit rejected the request ({code}): {exc.message}", metadata=meta)
    if code == "failed_precondition" or code == "already_exists" or code == "aborted":
        return errors.LiveKitPrecondition(f"LiveKit refused ({code}): {exc.message}", metadata=meta)
    if status == 429 or code == "resource_exhausted":
        return errors.LiveKitRateLimited(f"LiveKit rate-limited the dispatcher: {exc.message}", metadata=meta)
    if exc.retryable:
        return errors.LiveKitUnavailable(f"LiveKit unavailable for {method}: {exc}", metadata=meta)
    return errors.LiveKitInternal(f"LiveKit {method} failed: {exc}", metadata=meta)


# Outcomes that mean LiveKit cannot serve us at all, as opposed to refusing one request.
_UNHEALTHY = (errors.LiveKitUnavailable, errors.LiveKitRejectedCredentials)


@dataclass
class LiveKitCalls:
    """Runs one logical LiveKit request as tenacity-retried attempts that all end before
    `deadline` (event-loop time). Each attempt gets at most `retry.attempt_timeout`."""

    retry: RetryConfig
    metrics: DispatcherMetrics
    # Passive health: LiveKit answering at all (even a 4xx about one request) is
    # healthy; unreachable or refusing our key is not.
    report_health: Callable[[bool], Awaitable[None]] | None = None
    _latency: LabelledChildren = field(init=False, repr=False)
    # What was last reported: every request reports, and nearly every report repeats the
    # last one, which the health reporter would ignore anyway (it changes nothing).
    _reported: bool | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self._latency = LabelledChildren(self.metrics.livekit_latency)

    async def run(
        self,
        method: str,
        room: str,
        attempt: Callable[[float], Awaitable[T]],
        deadline: float,
        *,
        may_retry: Callable[[LiveKitCallError], bool] = lambda _: True,
    ) -> T:
        """`attempt(timeout)` does one request. A retryable failure is retried only if
        `may_retry` also allows it (CreateDispatch: never after a failure that may have
        created the dispatch anyway, since a second create adds a second agent)."""
        cfg = self.retry

        def count_retry(state: RetryCallState) -> None:
            self.metrics.livekit_retries.labels(method=method).inc()
            failure = state.outcome.exception() if state.outcome else None
            logger.warning("LiveKit %s failed (%s); retry %d", method, failure, state.attempt_number)

        try:
            value = await call_with_retries(
                lambda: self._attempt(method, attempt, deadline),
                deadline,
                max_attempts=cfg.max_attempts,
                initial_backoff=cfg.initial_backoff,
                max_backoff=cfg.max_backoff,
                retry_if=lambda e: isinstance(e, LiveKitCallError) and e.retryable and may_retry(e),
                before_sleep=count_retry,
            )
        except LiveKitCallError as exc:
            error = to_domain_error(exc, method=method, room=room)
            await self._health(not isinstance(error, _UNHEALTHY))
            raise error from exc
        if self._reported is not True:
            await self._health(True)
        return value

    async def _attempt(self, method: str, attempt: Callable[[float], Awaitable[T]], deadline: float) -> T:
        """One timed attempt within what is left of `deadline`, errors raised as they come
        (`LiveKitCallError`). One coroutine: every LiveKit request passes through it, and
        each await the request makes is resumed through every coroutine stacked above it."""
        left = time_left(deadline)
        if left < MIN_ATTEMPT_SECONDS:
            raise LiveKitCallError("deadline", "no time left for a LiveKit request", status=None)
        started = time.perf_counter()
        result = "error"
        try:
            value = await attempt(min(self.retry.attempt_timeout, left))
            result = "ok"
            return value
        except LiveKitCallError as exc:
            result = exc.code if exc.status is None else str(exc.status)
            raise
        finally:
            self._latency(method, result).observe(time.perf_counter() - started)

    async def _health(self, healthy: bool) -> None:
        if self.report_health is not None and healthy is not self._reported:
            self._reported = healthy
            await self.report_health(healthy)
