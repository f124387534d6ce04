"""Which numbers a fault run calls: every kind, however few the calls."""

from __future__ import annotations

from collections import Counter

import pytest

from services.chaos.calls import NUMBERS_PER_KIND, NumberKind, numbers, plan_calls


@pytest.mark.parametrize("count", [3, 4, 10, 31, 100])
def test_any_run_of_three_or_more_calls_has_every_kind_in_near_equal_shares(count: int) -> None:
    kinds = Counter(call.number.kind for call in plan_calls("none", count, numbers()))
    assert set(kinds) == set(NumberKind)
    assert max(kinds.values()) - min(kinds.values()) <= 1


def test_the_first_three_calls_are_warm_cold_unknown_and_the_plan_is_the_same_every_run() -> None:
    first = plan_calls("none", 3, numbers())
    assert [call.number.kind for call in first] == [NumberKind.WARM, NumberKind.COLD, NumberKind.UNKNOWN]
    again = plan_calls("none", 100, numbers())
    assert again == plan_calls("none", 100, numbers())
    assert again[:3] == first


def test_the_pool_still_holds_each_number_once_per_kind() -> None:
    pool = numbers()
    assert len({n.national for n in pool}) == len(pool) == NUMBERS_PER_KIND * len(NumberKind)
    assert Counter(n.kind for n in pool) == dict.fromkeys(NumberKind, NUMBERS_PER_KIND)
