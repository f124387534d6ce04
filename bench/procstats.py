"""Per-process memory and CPU from /proc (no psutil dependency).

Peak RSS is the kernel's high-water mark (VmHWM). Writing "5" to
/proc/<pid>/clear_refs resets it to the current RSS (Linux >= 4.0), so each
scenario reports its own peak; where that write is refused, the peak is since the
process started and the report says so."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else round(kib / 1024, 1)


def rss_mb(pid: int) -> float | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else round(kib / 1024, 1)


def reset_peak_rss(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) may hold spaces: split after its closing parenthesis.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    guest = sum(fields[8:10])  # already counted in user/nice
    return (sum(fields) - idle - guest) / _CLOCK_TICKS


@dataclass
class ProcessWatch:
    """CPU used and peak RSS of a set of named processes over one scenario."""

    pids: dict[str, int]
    # False for short blocks that only need CPU: the scenario's peak RSS stays the scenario's.
    reset_peak: bool = True

    def __post_init__(self) -> None:
        self.peak_reset = self.reset_peak and all([reset_peak_rss(pid) for pid in self.pids.values()])
        self._cpu_start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine_start = machine_busy_seconds()

    def finish(self, wall_seconds: float) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for name, pid in self.pids.items():
            start, end = self._cpu_start.get(name), cpu_seconds(pid)
            used = None if start is None or end is None else round(end - start, 2)
            out[name] = {
                "peak_rss_mb": peak_rss_mb(pid),
                "cpu_s": used,
                # Share of one core over the scenario's wall time; 2 cores = 200 %.
                "cpu_pct": None if used is None or wall_seconds <= 0 else round(100 * used / wall_seconds, 1),
            }
        return out

    def machine(self, wall_seconds: float, processes: dict[str, dict[str, float | None]]) -> dict[str, float]:
        """Busy CPU of the whole machine over the scenario, and the part no watched process used
        (other work on this shared machine, plus the orchestrator): % of one core, 2 cores = 200 %."""
        busy = machine_busy_seconds() - self._machine_start
        ours = sum(p["cpu_s"] or 0.0 for p in processes.values())
        if wall_seconds <= 0:
            return {}
        return {
            "busy_pct": round(100 * busy / wall_seconds, 1),
            "unwatched_pct": round(100 * max(0.0, busy - ours) / wall_seconds, 1),
        }


# A process set counts as idle once it used less than this share of one core over one
# sample: above the idle mesh's own background (gRPC pollers, the call history's sweep).
IDLE_SHARE = 0.10
_IDLE_SAMPLE_SECONDS = 0.25


async def until_idle(pids: dict[str, int], limit_seconds: float) -> float:
    """Waits until the processes have finished what a step left them (a call reporter's
    queue, CallHistoryService's backlog) or `limit_seconds` have passed; returns the
    seconds waited. A step is measured from a quiet start, and what it left behind is
    counted as its own work rather than as the next step's."""
    began = time.monotonic()
    while True:
        start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(_IDLE_SAMPLE_SECONDS)
        used = sum((cpu_seconds(pid) or 0.0) - (start[name] or 0.0) for name, pid in pids.items())
        waited = time.monotonic() - began
        if used < IDLE_SHARE * _IDLE_SAMPLE_SECONDS or waited >= limit_seconds:
            return round(waited, 2)
