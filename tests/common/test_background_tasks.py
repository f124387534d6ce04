from __future__ import annotations

import asyncio

import pytest

from services.common.background_tasks import cancel_and_wait

pytestmark = pytest.mark.asyncio


async def test_every_task_has_ended_when_it_returns() -> None:
    stopped: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append(name)

    tasks = [asyncio.create_task(worker(name)) for name in ("sweep", "deliver")]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks, None)
    assert sorted(stopped) == ["deliver", "sweep"]
    assert all(task.cancelled() for task in tasks)


async def test_a_task_that_already_ended_is_fine() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done)
    assert done.done() and not done.cancelled()
