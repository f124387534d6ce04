"""Optional sampling profiles of the services while a step runs (`--profile DIR`):
py-spy attached to each process, non-blocking (it never pauses the process), writing
collapsed stacks that `python -m bench.hotspots FILE` ranks. py-spy is a local tool,
not a project dependency: `pip install py-spy`."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path

PROFILED = ("gateway", "persona", "dispatcher", "floor")
SAMPLES_PER_SECOND = 250


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return found


class Profiler:
    def __init__(self, directory: Path, step: str, pids: dict[str, int]) -> None:
        self._directory = directory
        self._step = step
        self._pids = {name: pid for name, pid in pids.items() if name in PROFILED}
        self._processes: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Profiler:
        self._directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self._pids.items():
            out = self._directory / f"{self._step}-{name}.txt"
            self._processes.append(
                await asyncio.create_subprocess_exec(
                    py_spy(),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(SAMPLES_PER_SECOND),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            )
        await asyncio.sleep(1.0)  # attaching takes a moment; samples before the run are idle anyway
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self._processes:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for process in self._processes:
            await asyncio.wait_for(process.wait(), 30)
