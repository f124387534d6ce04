"""services/common/event_loop.py: the gRPC services' loop."""

from __future__ import annotations

import asyncio

from services.common import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_runs_on_uvloop_where_installed() -> None:
    assert event_loop.run(_loop_module()).startswith("uvloop")
