"""The launch report through a real pipe into a real child process: what the
launcher reads is what the child sent, nothing when it sent nothing."""

from __future__ import annotations

import sys

from services.common.launch_report import LaunchReport
from services.launcher.children import ChildProcess
from tests.child_process import REPO_ROOT

SEND = (
    "from services.common.launch_report import LaunchReport, LaunchReporter;"
    "r = LaunchReporter.from_env(); r.send(LaunchReport({'grpc': '127.0.0.1:5'})); r.send(LaunchReport(error='x'))"
)


async def _run(code: str, *, reports: bool = True) -> LaunchReport | None:
    child = ChildProcess("probe", [sys.executable, "-c", code], {"PYTHONPATH": str(REPO_ROOT)}, reports=reports)
    await child.start()
    report = await child.report()
    assert await child.wait() == 0, child.last_lines()
    return report


async def test_the_first_report_the_child_sends_is_read() -> None:
    assert await _run(SEND) == LaunchReport({"grpc": "127.0.0.1:5"})


async def test_a_child_that_sends_nothing_reports_none() -> None:
    assert await _run("pass") is None
    assert await _run(SEND, reports=False) is None  # without the pipe, the child's send does nothing


def test_anything_but_a_report_decodes_to_none() -> None:
    assert LaunchReport.decode(b'{"listening": {"http": "h:1"}, "error": null}\n') == LaunchReport({"http": "h:1"})
    for junk in (b"", b"{", b"[]", b'{"listening": 3, "error": null}'):
        assert LaunchReport.decode(junk) is None
