"""Deadline budgets. grpc-python does not propagate deadlines to outgoing calls, so
a handler passes `remaining_budget(context, budget)` onward itself, and works to
`answer_budget(context, budget)`: the same less a margin to send its answer in."""

from __future__ import annotations

from typing import Protocol

# A caller without a deadline shows a time_remaining() of years; anything above
# this is treated as "no deadline".
_NO_DEADLINE_ABOVE_SECONDS = 10 * 365 * 24 * 3600.0

# Kept back from a handler's budget so the caller receives the handler's own answer
# (stale persona, default, a clear error) rather than its own DEADLINE_EXCEEDED; at
# most a tenth of the budget. Thinner margins lost answers on a loaded machine: the
# reply reached the caller just after its deadline, the event loop having stalled
# for longer than the margin.
ANSWER_MARGIN_SECONDS = 0.25


class _HasTimeRemaining(Protocol):
    def time_remaining(self) -> float | None: ...


def remaining_budget(context: _HasTimeRemaining, budget: float) -> float:
    """Seconds this handler may still spend: min(caller's remaining time, budget),
    never negative. `budget` is the service's own cap for callers without a deadline."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_ABOVE_SECONDS:
        return max(0.0, budget)
    return max(0.0, min(remaining, budget))


def less_answer_margin(budget: float) -> float:
    """`budget` less the answer margin (ANSWER_MARGIN_SECONDS, at most 10 %)."""
    return max(0.0, budget - min(ANSWER_MARGIN_SECONDS, budget * 0.1))


def answer_budget(context: _HasTimeRemaining, budget: float) -> float:
    """Seconds of work a handler may do and still answer before the caller's deadline."""
    return less_answer_margin(remaining_budget(context, budget))
