"""One measured step: set the stand-ins' latency, let the load generator sign and
warm up, zero the stand-ins' counters, then run the job while watching every
process's CPU and peak RSS, wait until every process is idle again, and read back
what the stand-ins saw."""

from __future__ import annotations

import contextlib
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import BenchConfig
from .mesh import API_KEY, API_SECRET, CRM_BASE_PATH, LoadGenerator, Mesh
from .personas import BenchNumbers, crm_segment
from .procstats import ProcessWatch, until_idle
from .profiling import Profiler
from .stats import minus

_RUN_ID = secrets.token_hex(2)
# The longest a step waits after its last answer for the processes to finish what it left
# them (the call reporter's queue and CallHistoryService's backlog after an overload): the
# next step starts on a quiet machine, and the backlog's CPU is counted where it was made.
DRAIN_LIMIT_SECONDS = 60.0


@dataclass
class Bench:
    cfg: BenchConfig
    mesh: Mesh
    loadgen: LoadGenerator
    numbers: BenchNumbers
    floor_url: str
    bare_health_target: str
    _tags: itertools.count[int] = field(default_factory=itertools.count)

    def pids(self) -> dict[str, int]:
        return {**self.mesh.pids(), "loadgen": self.loadgen.pid}

    def http_job(self, url: str, mode: str, numbers: list[str], **params: Any) -> dict[str, Any]:
        # Short and unique per step: rooms and event ids never repeat within a run.
        tag = f"{_RUN_ID}{next(self._tags):03d}"
        return {
            "kind": "http",
            "url": url,
            "mode": mode,
            "numbers": numbers,
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "tag": tag,
            # The load generator puts each call's room into LiveKit while it prepares, untimed.
            "livekit_control": self.mesh.livekit.origin,
            **params,
        }

    async def _set_latency(self, crm_latency: float, livekit_latency: float, *, keep_rooms: bool = False) -> None:
        # `reset` also zeroes the latency, so it is set again right after. After a prepare,
        # LiveKit keeps the rooms it was given and only forgets the calls it counted.
        for standin, seconds in ((self.mesh.crm, crm_latency), (self.mesh.livekit, livekit_latency)):
            await standin.control("reset_calls" if keep_rooms and standin is self.mesh.livekit else "reset")
            await standin.control("latency", {"seconds": seconds})

    async def measure(
        self,
        sid: str,
        name: str,
        job: dict[str, Any],
        *,
        crm_latency: float = 0.0,
        livekit_latency: float = 0.0,
        watch_numbers: list[str] | None = None,
    ) -> dict[str, Any]:
        await self._set_latency(crm_latency, livekit_latency)
        prepared = await self.loadgen.run({"op": "prepare", **job})
        await self._set_latency(crm_latency, livekit_latency, keep_rooms=True)  # counters now cover the run only
        async with contextlib.AsyncExitStack() as stack:
            if self.cfg.profile_dir:
                await stack.enter_async_context(Profiler(self.cfg.profile_dir, sid, self.pids()))
            watch = ProcessWatch(self.pids())
            began = time.monotonic()
            result = await self.loadgen.run({"op": "run"})
            drained = await until_idle(self.pids(), DRAIN_LIMIT_SECONDS)
            wall = time.monotonic() - began
            processes = watch.finish(wall)
            machine_cpu = watch.machine(wall, processes)
        row: dict[str, Any] = {
            "id": sid,
            "name": name,
            "params": {k: v for k, v in job.items() if k not in ("api_key", "api_secret", "numbers", "kind")},
            "crm_latency_ms": round(crm_latency * 1000, 1),
            "livekit_latency_ms": round(livekit_latency * 1000, 1),
            **result,
            "warmup_sent": prepared.get("warmup_sent", 0),
            "processes": processes,
            "machine_cpu": machine_cpu,
            "peak_rss_since_start": not watch.peak_reset,
            # Seconds after the last answer until every process was idle again: their CPU
            # (and the CPU shares' wall time) includes that drain, the rate does not.
            "drain_seconds": drained,
        }
        _cpu_per_call(row)
        if job["kind"] == "http":
            row["standins"] = await self._standin_counts(watch_numbers or [])
            row.update(_injected(row, crm_latency, livekit_latency))
        print(_progress(row), flush=True)
        return row

    def grpc_job(self, target: str, method: str, *, concurrency: int, **params: Any) -> dict[str, Any]:
        """A closed loop of `method` ("health" or "get_persona") for `duration` seconds or `count` calls."""
        return {
            "kind": "grpc",
            "target": target,
            "method": method,
            "number": self.numbers.warm,
            "concurrency": concurrency,
            **params,
        }

    async def run_job(self, job: dict[str, Any], *, livekit_latency: float = 0.0) -> dict[str, Any]:
        """One load-generator job for a step made of many short blocks: latencies, each
        process's CPU seconds (`cpu_s`) and, for webhooks, the LiveKit calls the stand-in
        answered (`livekit_calls`), without a row, peak RSS or stand-in latency bookkeeping
        of its own."""
        await self._set_latency(0.0, livekit_latency)
        await self.loadgen.run({"op": "prepare", **job})
        await self._set_latency(0.0, livekit_latency, keep_rooms=True)  # the stand-in's calls now cover the run only
        watch = ProcessWatch(self.pids(), reset_peak=False)
        began = time.monotonic()
        result = await self.loadgen.run({"op": "run"})
        result["drain_seconds"] = await until_idle(self.pids(), DRAIN_LIMIT_SECONDS)
        processes = watch.finish(time.monotonic() - began)
        result["cpu_s"] = {name: stats["cpu_s"] for name, stats in processes.items()}
        if job["kind"] == "http":
            calls = (await self.mesh.livekit.state())["calls"]
            result["livekit_calls"] = dict(Counter(call["method"] for call in calls))
        return result

    async def alternate(
        self, legs: dict[str, Callable[[], dict[str, Any]]], blocks: int, *, livekit_latency: float = 0.0
    ) -> dict[str, list[dict[str, Any]]]:
        """`blocks` rounds of one run_job per leg, in the legs' order: what is compared is
        measured seconds apart, so the machine's drift hits every leg alike. Each leg makes
        a fresh job per block (webhooks need new rooms and event ids)."""
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in legs}
        for _ in range(blocks):
            for name, make_job in legs.items():
                results[name].append(await self.run_job(make_job(), livekit_latency=livekit_latency))
        return results

    async def timer_overshoot_ms(self, latencies: list[float], count: int) -> dict[str, float]:
        """How much longer than asked a stand-in's injected sleep lasts (asyncio timer
        resolution + wake-up), per latency: p50 of (GET with latency L) - L - (GET with none)."""
        crm_path = f"{CRM_BASE_PATH}/{crm_segment(self.numbers.warm)}"
        probe = {"kind": "probe", "url": self.mesh.crm.origin, "path": crm_path, "count": count}
        p50 = {}
        for latency in [0.0, *latencies]:
            await self._set_latency(latency, 0.0)
            await self.loadgen.run({"op": "prepare", **probe})
            p50[latency] = (await self.loadgen.run({"op": "run"}))["latency_ms"]["p50"]
        await self._set_latency(0.0, 0.0)
        return {f"{lat * 1000:g}": round(max(0.0, p50[lat] - lat * 1000 - p50[0.0]), 3) for lat in latencies}

    async def _standin_counts(self, numbers: list[str]) -> dict[str, Any]:
        lk = await self.mesh.livekit.state()
        crm = await self.mesh.crm.state()
        segments = {crm_segment(n) for n in numbers}
        return {
            "livekit_creates": lk["create_count"],
            "livekit_calls": dict(Counter(call["method"] for call in lk["calls"])),
            "livekit_failed_calls": sum(1 for call in lk["calls"] if call["status"] != 200),
            "crm_requests_total": crm["total_requests"],
            "crm_requests_for_numbers": sum(n for seg, n in crm["requests"].items() if seg in segments),
        }


def _cpu_per_call(row: dict[str, Any]) -> None:
    """CPU milliseconds each process spent per call answered: unlike rates and latencies,
    this barely moves when other work shares the machine, so runs stay comparable."""
    calls = row["ok"] + row["error_count"]
    for stats in row["processes"].values():
        stats["cpu_ms_per_call"] = round(1000 * stats["cpu_s"] / calls, 3) if calls and stats["cpu_s"] else None


def _injected(row: dict[str, Any], crm_latency: float, livekit_latency: float) -> dict[str, Any]:
    """The stand-ins' sleeps on one call's critical path, from what they actually saw
    (sequential calls only: under concurrency the sleeps overlap), and latency minus that.
    Within a call, DispatcherService (and the floor) send ListRooms beside the first
    ListDispatch: those two sleeps overlap, so each ListRooms is off the path."""
    calls = row["ok"] + row["error_count"]
    if not calls:
        return {}
    counts = row["standins"]
    livekit = counts["livekit_calls"]
    livekit_per_call = sum(livekit.values()) / calls
    overlapped = min(livekit.get("ListRooms", 0), livekit.get("ListDispatch", 0))
    on_path_per_call = livekit_per_call - overlapped / calls
    crm_per_call = counts["crm_requests_for_numbers"] / calls
    injected_ms = 1000 * (crm_latency * crm_per_call + livekit_latency * on_path_per_call)
    out: dict[str, Any] = {
        "livekit_calls_per_call": round(livekit_per_call, 3),
        "livekit_calls_on_path_per_call": round(on_path_per_call, 3),
        "crm_requests_per_call": round(crm_per_call, 3),
        "injected_ms": round(injected_ms, 2),
    }
    if row["params"].get("mode") == "sequential" and row["latency_ms"].get("count"):
        out["overhead_ms"] = minus(row["latency_ms"], injected_ms)
    return out


def _progress(row: dict[str, Any]) -> str:
    lat = row.get("latency_ms", {})
    cpu = row.get("machine_cpu", {})
    return (
        f"bench: [{row['id']}] {row['name']}: ok={row['ok']} errors={row['error_count']} "
        f"rate={row.get('rate_per_s')}/s p50={lat.get('p50')} p99={lat.get('p99')} ms "
        f"(machine busy {cpu.get('busy_pct')}%, not ours {cpu.get('unwatched_pct')}%)"
    )
