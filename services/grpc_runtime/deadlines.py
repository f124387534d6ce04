"""Deadline budgets. grpc-python does not propagate deadlines to outgoing calls, so
a handler passes `remaining_budget(context, budget)` onward itself."""

from __future__ import annotations

from typing import Protocol

# A caller without a deadline shows a time_remaining() of years; anything above
# this is treated as "no deadline".
_NO_DEADLINE_ABOVE_SECONDS = 10 * 365 * 24 * 3600.0


class _HasTimeRemaining(Protocol):
    def time_remaining(self) -> float | None: ...


def remaining_budget(context: _HasTimeRemaining, budget: float) -> float:
    """Seconds this handler may still spend: min(caller's remaining time, budget),
    never negative. `budget` is the service's own cap for callers without a deadline."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_ABOVE_SECONDS:
        return max(0.0, budget)
    return max(0.0, min(remaining, budget))
