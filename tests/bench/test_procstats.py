"""bench.procstats.until_idle against real processes: the bench's steps start on a quiet
machine and count a backlog's CPU where it was made."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.procstats import until_idle

_SPIN_THEN_SLEEP = "import time\nend = time.monotonic() + {spin}\nwhile time.monotonic() < end: pass\ntime.sleep(60)"


@contextmanager
def process(spin_seconds: float) -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", _SPIN_THEN_SLEEP.format(spin=spin_seconds)])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


async def test_an_idle_process_is_idle_at_the_first_sample() -> None:
    with process(spin_seconds=0.0) as pid:
        assert await until_idle({"idle": pid}, limit_seconds=30) < 5


async def test_a_busy_process_is_waited_for_until_it_stops_working() -> None:
    with process(spin_seconds=1.5) as pid:
        waited = await until_idle({"busy": pid}, limit_seconds=30)
    assert 1.0 <= waited < 30  # it spins for 1.5 s of wall time, most of it after the first sample


async def test_a_process_that_never_stops_is_waited_for_no_longer_than_the_limit() -> None:
    with process(spin_seconds=120.0) as pid:
        waited = await until_idle({"busy": pid}, limit_seconds=1.0)
    assert 1.0 <= waited < 5
