"""services/common/event_loop.py: the loop our services run on, and their start-up heap."""

from __future__ import annotations

import asyncio
import gc

from services.common import event_loop


async def _loop_and_frozen() -> tuple[str, int]:
    return type(asyncio.get_running_loop()).__module__, gc.get_freeze_count()


def test_runs_on_uvloop_with_the_start_up_heap_frozen() -> None:
    try:
        module, frozen = event_loop.run(_loop_and_frozen())
    finally:
        gc.unfreeze()  # this test process goes on collecting as before
    assert module.startswith("uvloop")
    assert frozen > 1000  # everything imported so far is out of the collector's way
