"""A circuit breaker for calls to a dependency that already retries each call (the
CRM behind tenacity): after `failure_threshold` consecutive failed calls it opens, and
callers are refused at once for `cooldown_seconds` instead of each waiting out its
retries against a dependency that is down. Then one caller at a time gets a *probe*
permit (half-open): its success closes the breaker, its failure opens it for another
cool-down. Any success closes it, whoever reports it.

    permit = breaker.acquire()          # None: refused, answer without the dependency
    try:
        result = await call()
    except DependencyDown:
        permit.failed(); raise
    permit.succeeded()                  # or permit.release(): outcome unknown (cancelled)

Written here rather than taken from PyPI: the asyncio-capable breakers there either
let every caller through while half-open (purgatory, circuitbreaker), need tornado
for coroutines (pybreaker) or are unmaintained (aiobreaker), and none lets a caller
ask for a permit without making the call through the breaker, which the persona
lookup needs (it answers from its cache when refused). Single event loop, no locks.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


Transition = Callable[[BreakerState, BreakerState], None]


class BreakerPermit:
    """Leave to call the dependency once; report how it went exactly once (later
    reports are ignored)."""

    def __init__(self, breaker: CircuitBreaker, *, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self._done = False

    def succeeded(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._succeeded(self)

    def failed(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._failed(self)

    def release(self) -> None:
        """Neither success nor failure (the call did not happen, or was cancelled)."""
        if not self._done:
            self._done = True
            self._breaker._released(self)


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: float,
        *,
        on_transition: Transition | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`failure_threshold` 0 = never opens."""
        if failure_threshold < 0 or cooldown_seconds < 0:
            raise ValueError("failure_threshold and cooldown_seconds must not be negative")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._on_transition = on_transition or (lambda old, new: None)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self) -> BreakerPermit | None:
        if self._state is BreakerState.CLOSED:
            return BreakerPermit(self, probe=False)
        if self._probe_out:
            return None
        if self._state is BreakerState.OPEN:
            if self._clock() < self._opened_at + self.cooldown_seconds:
                return None
            self._move(BreakerState.HALF_OPEN)
        self._probe_out = True
        return BreakerPermit(self, probe=True)

    def _succeeded(self, permit: BreakerPermit) -> None:
        if permit.probe:
            self._probe_out = False
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            # Also a call let through before the breaker opened: the dependency answers.
            self._probe_out = False
            self._move(BreakerState.CLOSED)

    def _failed(self, permit: BreakerPermit) -> None:
        if permit.probe:
            self._probe_out = False
            self._open()
            return
        if self._state is not BreakerState.CLOSED:
            return  # a call from before the breaker opened: already counted as down
        self._failures += 1
        if self.failure_threshold and self._failures >= self.failure_threshold:
            self._open()

    def _released(self, permit: BreakerPermit) -> None:
        if permit.probe:
            self._probe_out = False  # the next caller probes instead

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._on_transition(old, new)
