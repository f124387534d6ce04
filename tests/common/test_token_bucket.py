"""TokenBucket on a clock the test turns."""

from __future__ import annotations

import pytest

from services.common.token_bucket import TokenBucket


def test_burst_then_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.49
    assert not bucket.try_take()
    now[0] += 0.02  # half a second: one token at 2 a second
    assert bucket.try_take() and not bucket.try_take()
    now[0] += 100  # never more than the burst banked
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_a_token_given_back_can_be_taken_again_but_never_beyond_the_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=1.0, burst=1, clock=lambda: now[0])
    assert bucket.try_take() and not bucket.try_take()
    bucket.give_back()
    assert bucket.full
    bucket.give_back()
    assert bucket.try_take() and not bucket.try_take()


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (1, 0)])
def test_a_bucket_that_could_never_admit_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)
