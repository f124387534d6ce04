"""call_with_retries: the first attempt is bare (no tenacity built, no sleep), a
retryable failure is retried with tenacity's count, backoff and before_sleep, a refused
one is raised at once as itself, and no attempt starts that could not end by the
deadline."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from tenacity import BaseRetrying, RetryCallState

from services.common.retry import MIN_ATTEMPT_SECONDS, call_with_retries


class Flaky(Exception):
    pass


class Refused(Exception):
    pass


class Attempts:
    """An attempt that raises the given failures in turn, then answers."""

    def __init__(self, *failures: Exception, answer: str = "answer") -> None:
        self.failures = list(failures)
        self.answer = answer
        self.started_at: list[float] = []

    async def __call__(self) -> str:
        self.started_at.append(asyncio.get_running_loop().time())
        if self.failures:
            raise self.failures.pop(0)
        return self.answer


@contextmanager
def tenacity_set_ups() -> Iterator[list[int]]:
    """Counts how many times tenacity's retrying machinery is built, by watching its
    constructor run (no patching: the profile hook only observes)."""
    built: list[int] = []
    constructor = BaseRetrying.__init__.__code__

    def watch(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is constructor:
            built.append(1)

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        yield built
    finally:
        sys.setprofile(previous)


async def _call(
    attempt: Callable[[], Awaitable[str]],
    *,
    deadline: float | None = None,
    max_attempts: int = 3,
    backoff: float = 0.001,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> str:
    """Retries `Flaky` only, with a fixed backoff of `backoff` seconds (plus jitter);
    the deadline is far unless given."""
    return await call_with_retries(
        attempt,
        asyncio.get_running_loop().time() + 30.0 if deadline is None else deadline,
        max_attempts=max_attempts,
        initial_backoff=backoff,
        max_backoff=backoff,
        retry_if=lambda e: isinstance(e, Flaky),
        before_sleep=before_sleep,
    )


async def test_a_first_attempt_that_succeeds_builds_no_retrying_and_never_sleeps() -> None:
    attempt, sleeps = Attempts(), []
    with tenacity_set_ups() as built:
        value = await _call(attempt, before_sleep=sleeps.append)
    assert value == "answer"
    assert len(attempt.started_at) == 1
    assert built == []
    assert sleeps == []


async def test_a_retryable_first_failure_is_retried_with_tenacitys_count_and_before_sleep() -> None:
    attempt, states = Attempts(Flaky("one"), Flaky("two")), []

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        states.append((state.attempt_number, str(state.outcome.exception())))

    with tenacity_set_ups() as built:
        value = await _call(attempt, backoff=0.01, before_sleep=before_sleep)
    assert value == "answer"
    assert len(attempt.started_at) == 3
    # The bare first attempt counts as tenacity's first: the retries are numbered after it.
    assert states == [(1, "one"), (2, "two")]
    assert built == [1]
    # Backoff: each retry waited the first backoff (a loop's timer may fire a hair early).
    gaps = [b - a for a, b in zip(attempt.started_at, attempt.started_at[1:], strict=False)]
    assert all(gap >= 0.009 for gap in gaps), gaps


async def test_the_last_failure_is_raised_as_itself_after_max_attempts() -> None:
    last = Flaky("three")
    attempt, sleeps = Attempts(Flaky("one"), Flaky("two"), last, Flaky("never reached")), []
    with pytest.raises(Flaky) as raised:
        await _call(attempt, max_attempts=3, before_sleep=sleeps.append)
    assert raised.value is last
    assert len(attempt.started_at) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("retries_before", [0, 1], ids=["first attempt", "after a retry"])
async def test_a_refused_failure_is_raised_at_once_as_itself(retries_before: int) -> None:
    refused = Refused("no")
    attempt, sleeps = Attempts(*(Flaky(str(n)) for n in range(retries_before)), refused), []
    with tenacity_set_ups() as built, pytest.raises(Refused) as raised:
        await _call(attempt, max_attempts=5, before_sleep=sleeps.append)
    assert raised.value is refused
    assert len(attempt.started_at) == retries_before + 1
    assert len(sleeps) == retries_before
    # Tenacity is built only once a failure may be retried.
    assert len(built) == (1 if retries_before else 0)


async def test_no_attempt_starts_that_could_not_end_by_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.2
    attempt = Attempts(*(Flaky(str(n)) for n in range(100)))
    with pytest.raises(Flaky):
        await _call(attempt, deadline=deadline, max_attempts=100, backoff=0.03)
    # Stopped by the deadline, not by the attempt count, and before the deadline.
    assert 2 <= len(attempt.started_at) < 100
    assert loop.time() < deadline
    # The last attempt was allowed only with MIN_ATTEMPT_SECONDS left after its backoff.
    assert attempt.started_at[-1] < deadline - MIN_ATTEMPT_SECONDS / 2


async def test_a_cancellation_of_the_first_attempt_goes_straight_through() -> None:
    async def cancelled() -> str:
        raise asyncio.CancelledError

    with tenacity_set_ups() as built, pytest.raises(asyncio.CancelledError):
        await _call(cancelled)
    assert built == []
