"""The restart policy: doubling delays inside the window, giving up past the budget,
and a window that forgets old crashes."""

from __future__ import annotations

import signal

import pytest

from services.launcher.restarts import CrashHistory, RestartPolicy, describe_exit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delays_double_up_to_the_cap_and_the_crash_past_the_budget_gives_up() -> None:
    clock = Clock()
    history = CrashHistory(RestartPolicy(max_restarts=5, window_seconds=60, max_delay_seconds=4), clock)
    delays = []
    for _ in range(5):
        delays.append(history.record_crash())
        clock.now += 1
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert history.record_crash() is None
    assert history.crashes_in_window == 6


def test_crashes_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    history = CrashHistory(RestartPolicy(max_restarts=2, window_seconds=10), clock)
    assert history.record_crash() == 0.5
    assert history.record_crash() == 1.0
    clock.now += 10
    assert history.record_crash() == 0.5  # the first two are out of the window
    assert history.crashes_in_window == 1


def test_no_restarts_gives_up_at_the_first_crash() -> None:
    assert CrashHistory(RestartPolicy(max_restarts=0)).record_crash() is None


@pytest.mark.parametrize(("max_restarts", "window"), [(-1, 60.0), (5, 0.0)])
def test_a_policy_that_cannot_work_is_refused(max_restarts: int, window: float) -> None:
    with pytest.raises(ValueError, match="--max-restarts|--restart-window"):
        RestartPolicy(max_restarts=max_restarts, window_seconds=window)


def test_exits_are_described_by_code_or_signal_name() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
