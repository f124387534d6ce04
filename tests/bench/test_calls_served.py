"""bench.calls_served against a real `friday calls serve`: every event sent is recorded and
measured, one call each and in batches, with and without a gap."""

from __future__ import annotations

import pytest

from bench.calls_served import run

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(("batch", "gap_ms"), [(0, 0.0), (4, 1.0)])
async def test_it_measures_the_server_per_event(batch: int, gap_ms: float) -> None:
    row = await run(calls=10, batch=batch, gap_ms=gap_ms)
    assert row["events"] == 20 and row["batch"] == batch
    assert row["server_cpu_ms_per_event"] >= 0
    assert row["voluntary_switches_per_event"] > 0  # the server was woken by the calls it answered
