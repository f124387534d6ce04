"""answer_budget is written out in one function for the per-call path: it must give
exactly what its two steps, remaining_budget then less_answer_margin, give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.grpc_runtime.deadlines import answer_budget, less_answer_margin, remaining_budget


class _Remaining:
    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds

    def time_remaining(self) -> float | None:
        return self._seconds


_SECONDS = st.floats(min_value=-1e3, max_value=1e12, allow_nan=False)


@given(remaining=st.none() | _SECONDS | st.sampled_from([0.0, 0.25, 2.5, 3.0, 3.15e8, 3.16e8]), budget=_SECONDS)
def test_answer_budget_is_its_two_steps(remaining: float | None, budget: float) -> None:
    context = _Remaining(remaining)
    assert answer_budget(context, budget) == less_answer_margin(remaining_budget(context, budget))


def test_answer_budget_at_the_edges() -> None:
    for remaining, budget in [(None, 3.0), (None, -1.0), (0.0, 3.0), (2.5, 2.5), (1e10, 3.0), (-0.5, 3.0)]:
        context = _Remaining(remaining)
        assert answer_budget(context, budget) == less_answer_margin(remaining_budget(context, budget))
