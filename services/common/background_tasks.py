"""Stopping a component's background tasks (a sweep, a deliverer, queue senders): every
task is cancelled first, so they all stop together rather than one after the other, then
each is awaited, so none still runs once its owner's stop() has returned. A cancelled
task ends by raising CancelledError: that is how it is meant to end, not an error."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancels the tasks (None: a task never started) and waits until each has ended."""
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    for task in started:
        with contextlib.suppress(asyncio.CancelledError):
            await task
