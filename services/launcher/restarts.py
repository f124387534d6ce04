"""When `friday up` restarts a service that exited on its own, and when it gives up.

A crash is restarted after a delay that doubles with each crash still inside the
window (0.5 s, 1 s, 2 s, ... capped), so a service that dies once comes back at
once and one that keeps dying does not spin the CPU. More than `max_restarts`
crashes of one service within `window_seconds` means restarting does not help
(bad settings, a port someone else took, a broken persona file): the mesh stops."""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_seconds: float = 60.0
    initial_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"--max-restarts must not be negative, got {self.max_restarts}")
        if self.window_seconds <= 0:
            raise ValueError(f"--restart-window must be positive, got {self.window_seconds:g}")


class CrashHistory:
    """One service's crashes inside the policy's window."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._crashes: collections.deque[float] = collections.deque()

    @property
    def crashes_in_window(self) -> int:
        return len(self._crashes)

    def record_crash(self) -> float | None:
        """Counts a crash now; returns the delay before the restart, or None to give up."""
        now = self._clock()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] <= now - self.policy.window_seconds:
            self._crashes.popleft()
        restart = len(self._crashes)
        if restart > self.policy.max_restarts:
            return None
        return min(self.policy.max_delay_seconds, self.policy.initial_delay_seconds * 2 ** (restart - 1))


def describe_exit(returncode: int) -> str:
    """`exited with code 1`, or `was killed by SIGKILL` (asyncio reports a signal as -signum)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
