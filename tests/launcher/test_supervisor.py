"""The supervisor with plain child processes (no services): a child that exits is
started again, one that refuses its settings is not, a stop request wins."""

from __future__ import annotations

import asyncio
import sys

import pytest

from services.launcher.children import ChildProcess
from services.launcher.restarts import RestartPolicy
from services.launcher.service import Service
from services.launcher.supervisor import Supervisor


def _service(code: str) -> Service:
    child = ChildProcess("probe", [sys.executable, "-c", code], {})
    return Service(child, "probe", "-", "-")


def _supervisor(service: Service, max_restarts: int) -> tuple[Supervisor, asyncio.Event]:
    stop = asyncio.Event()
    policy = RestartPolicy(max_restarts=max_restarts, initial_delay_seconds=0.01, max_delay_seconds=0.01)
    return Supervisor([service], policy, ready_timeout=60, stop_requested=stop), stop


async def test_a_child_that_keeps_exiting_is_restarted_up_to_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    service = _service("print('started')")
    supervisor, _ = _supervisor(service, max_restarts=2)
    assert await supervisor.start_all()
    assert await supervisor.supervise() == 1
    err = capsys.readouterr().err
    assert "probe exited with code 0; restart 1 of 2 in 0.01s" in err
    assert "probe exited with code 0; restart 2 of 2 in 0.01s" in err
    assert "probe exited with code 0: 3 crashes within 60s, more than --max-restarts 2; giving up" in err


async def test_a_child_that_refuses_its_settings_is_not_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    service = _service("import sys; print('FOO=bar is not a number', file=sys.stderr); sys.exit(2)")
    supervisor, _ = _supervisor(service, max_restarts=5)
    assert await supervisor.start_all()
    assert await supervisor.supervise() == 1
    err = capsys.readouterr().err
    assert "probe refused its settings (exit code 2); restarting cannot help, stopping the mesh" in err
    assert "FOO=bar is not a number" in err and "restart 1" not in err


async def test_a_stop_request_ends_supervision_with_zero() -> None:
    service = _service("import time; time.sleep(600)")
    supervisor, stop = _supervisor(service, max_restarts=5)
    assert await supervisor.start_all()
    asyncio.get_running_loop().call_soon(stop.set)
    try:
        assert await supervisor.supervise() == 0
    finally:
        await supervisor.stop_all()
    assert service.child.returncode is not None
