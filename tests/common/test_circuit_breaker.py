"""CircuitBreaker on a clock the test turns: consecutive failures open it, an open
breaker refuses, one probe at a time once the cool-down is over, and how the probe
ends decides the state."""

from __future__ import annotations

from services.common.circuit_breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(threshold: int = 3, cooldown: float = 5.0) -> tuple[CircuitBreaker, Clock, list[tuple[str, str]]]:
    clock, moves = Clock(), []
    breaker = CircuitBreaker(
        threshold, cooldown, clock=clock, on_transition=lambda old, new: moves.append((old.value, new.value))
    )
    return breaker, clock, moves


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        permit.failed()


def test_consecutive_failures_open_it_and_a_success_in_between_resets_the_count() -> None:
    breaker, _, moves = _breaker(threshold=3)
    _fail(breaker, 2)
    ok = breaker.acquire()
    assert ok is not None and not ok.probe
    ok.succeeded()
    _fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 2
    _fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.acquire() is None
    assert moves == [("closed", "open")]


def test_after_the_cooldown_one_probe_at_a_time() -> None:
    breaker, clock, moves = _breaker(threshold=1, cooldown=5.0)
    _fail(breaker, 1)
    clock.now += 4.9
    assert breaker.acquire() is None
    clock.now += 0.2
    probe = breaker.acquire()
    assert probe is not None and probe.probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire() is None  # the probe is out: everyone else is still refused
    probe.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_probe_opens_it_for_another_cooldown() -> None:
    breaker, clock, moves = _breaker(threshold=1, cooldown=5.0)
    _fail(breaker, 1)
    clock.now += 5.0
    probe = breaker.acquire()
    assert probe is not None
    probe.failed()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.0
    assert breaker.acquire() is None
    clock.now += 1.0
    assert breaker.acquire() is not None
    assert moves[-2:] == [("half_open", "open"), ("open", "half_open")]


def test_a_released_probe_lets_the_next_caller_probe() -> None:
    breaker, clock, _ = _breaker(threshold=1)
    _fail(breaker, 1)
    clock.now += 10
    probe = breaker.acquire()
    assert probe is not None
    probe.release()
    probe.failed()  # a second report of the same permit is ignored
    assert breaker.state is BreakerState.HALF_OPEN
    again = breaker.acquire()
    assert again is not None and again.probe


def test_a_success_from_a_call_let_through_earlier_closes_it() -> None:
    breaker, _, _ = _breaker(threshold=2)
    early = breaker.acquire()
    assert early is not None
    _fail(breaker, 2)
    assert breaker.state is BreakerState.OPEN
    early.succeeded()  # the dependency answered after all
    assert breaker.state is BreakerState.CLOSED


def test_late_failures_of_calls_from_before_the_opening_are_not_counted_again() -> None:
    breaker, clock, moves = _breaker(threshold=1, cooldown=5.0)
    late = breaker.acquire()
    assert late is not None
    _fail(breaker, 1)
    clock.now += 5.0
    late.failed()
    assert breaker.acquire() is not None  # the cool-down was not restarted by the late failure
    assert moves == [("closed", "open"), ("open", "half_open")]


def test_threshold_zero_never_opens() -> None:
    breaker, _, moves = _breaker(threshold=0)
    _fail(breaker, 1000)
    assert breaker.state is BreakerState.CLOSED and moves == []
