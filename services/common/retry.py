"""Retries that always end before a deadline: the one tenacity set-up shared by the
CRM client (PersonaService) and the LiveKit calls (DispatcherService).

Every retry here makes the first attempt bare and builds tenacity's retrying only for
a failure that may be retried (`retry_after_first_failure`; the gateway's call reporter
uses it with a retry policy of its own): almost every request succeeds at once, and building
`AsyncRetrying` (stop, wait and retry objects, its state) per request was a visible
share of each service's own CPU (see README Performance).

Exponential backoff with jitter scaled to the first backoff (tenacity's default
jitter of 1 s would not fit inside a phone ring), at most `max_attempts`, and no
attempt started that could not finish before `deadline` (event-loop time). The
caller's deadline is the real limit; the attempt count only bounds a fast failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base

T = TypeVar("T")

# An attempt with less time than this left cannot get an answer: stop and let the
# caller fall back (stale, default, a clear error) while it still can answer.
MIN_ATTEMPT_SECONDS = 0.02


def time_left(deadline: float) -> float:
    """Seconds until `deadline` (event-loop time); negative once it passed."""
    return deadline - asyncio.get_running_loop().time()


class _StopBefore(stop_base):
    """Stop when the next attempt, after its backoff sleep, could not finish by `deadline`."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time_left(self._deadline) - retry_state.upcoming_sleep < MIN_ATTEMPT_SECONDS


async def retry_after_first_failure(
    attempt: Callable[[], Awaitable[T]],
    retrying: Callable[[], AsyncRetrying],
    retry_if: Callable[[BaseException], bool],
) -> T:
    """`attempt()` once, bare; only a failure `retry_if` accepts builds `retrying()` and
    is handed to it as its first attempt's outcome, so whether and when it is retried,
    the stop, the attempt count and `before_sleep` are exactly tenacity's. A failure
    `retry_if` refuses is raised at once, as tenacity would. `retry_if` must be a pure
    predicate: it judges the first failure twice. Only `Exception`s are judged; a
    cancellation goes straight through. The last failure is re-raised as itself
    (`retrying` must be built with `reraise=True`)."""
    try:
        return await attempt()
    except Exception as exc:
        if not retry_if(exc):
            raise
        first_failure: Exception | None = exc

    async for attempt_state in retrying():
        with attempt_state:
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return await attempt()
    raise AssertionError("unreachable: tenacity either returns or raises")


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    deadline: float,
    *,
    max_attempts: int,
    initial_backoff: float,
    max_backoff: float,
    retry_if: Callable[[BaseException], bool],
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> T:
    """`attempt()` until it returns, retried (exponential backoff with jitter) while
    `retry_if` accepts the failure, at most `max_attempts` times and never past
    `deadline`; the last failure is re-raised as itself once retries stop."""

    def retrying() -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(max_attempts) | _StopBefore(deadline),
            wait=wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff, jitter=initial_backoff),
            retry=retry_if_exception(retry_if),
            before_sleep=before_sleep,
            reraise=True,
        )

    return await retry_after_first_failure(attempt, retrying, retry_if)
