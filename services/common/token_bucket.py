"""A token bucket: `rate` tokens a second, at most `burst` banked. `try_take()` never
waits: a caller over the limit is answered at once instead of queued, which is what a
lookup inside a phone ring needs (a wait would only move the failure to the caller's
deadline)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and room for at least one token")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> bool:
        """Takes one token if there is one."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def give_back(self) -> None:
        """Returns a token taken for work that then did not happen."""
        self._tokens = min(self.burst, self._tokens + 1)

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.burst
