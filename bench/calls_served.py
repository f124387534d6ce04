"""CallHistoryService's CPU per recorded event as it is served: a real `friday calls serve`
process (gRPC, its SQLite thread, a temporary database) fed the events a webhook of the
bench reports, one RecordCallEvent each or in RecordCallEvents batches, back to back or
with a gap between calls. The CPU is the server process's own (/proc), so it counts what
callgrind and an in-process profile do not: a process woken from sleep for each call.

    python -m bench.calls_served --calls 500                 # back to back, one call per event
    python -m bench.calls_served --calls 500 --gap-ms 12     # one call every 12 ms, as 7p paces them
    python -m bench.calls_served --calls 500 --batch 10      # RecordCallEvents, 10 events a call

Prints one JSON line: CPU ms and voluntary context switches per event."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.percall_calls import _requests
from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1.call_pb2 import CallEvent
from services.calls.client import CallsCallError, CallsClient

WARMUP_CALLS = 50
READY_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _voluntary_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total


def _events(prefix: str, calls: int) -> list[CallEvent]:
    return [pb.RecordCallEventRequest.FromString(r).event for r in _requests(prefix, calls, "join")]


async def _until_serving(client: CallsClient, server: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + READY_SECONDS
    while True:
        try:
            await client.list_calls(pb.ListCallsRequest(page_size=1), timeout=1.0)
            return
        except CallsCallError:
            if server.returncode is not None or loop.time() > give_up:
                raise RuntimeError("friday calls serve did not start") from None
            await asyncio.sleep(0.1)


async def _send(client: CallsClient, events: list[CallEvent], batch: int, gap_s: float) -> None:
    step = max(1, batch)
    for start in range(0, len(events), step):
        if batch:
            await client.record_many(events[start : start + step])
        else:
            await client.record(events[start])
        if gap_s:
            await asyncio.sleep(gap_s)


async def run(calls: int, batch: int, gap_ms: float) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="calls-served-") as directory:
        env = dict(
            os.environ,
            CALLS_DATABASE_URL=f"sqlite:///{Path(directory) / 'calls.sqlite3'}",
            CALLS_PORT=str(port),
            CALLS_METRICS_PORT="0",
            # No sweep during the run, and the bench's log level: no access line per call.
            CALLS_SWEEP_INTERVAL_SECONDS="3600",
            LOG_LEVEL="WARNING",
        )
        server = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", "calls", "serve", env=env)
        try:
            async with CallsClient(f"127.0.0.1:{port}") as client:
                await _until_serving(client, server)
                await _send(client, _events("warm", WARMUP_CALLS), batch, 0.0)
                events = _events("call", calls)
                cpu, switches = _cpu_seconds(server.pid), _voluntary_switches(server.pid)
                await _send(client, events, batch, gap_ms / 1000)
                cpu, switches = _cpu_seconds(server.pid) - cpu, _voluntary_switches(server.pid) - switches
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
    return {
        "events": len(events),
        "batch": batch,
        "gap_ms": gap_ms,
        "server_cpu_ms_per_event": round(cpu / len(events) * 1000, 3),
        "voluntary_switches_per_event": round(switches / len(events), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calls_served", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls of the bench's join flow (two events each)")
    parser.add_argument("--batch", type=int, default=0, help="events per RecordCallEvents call; 0 = RecordCallEvent")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause after each call")
    args = parser.parse_args(argv)
    if not 0 <= args.batch <= 500:
        parser.error("--batch must be 0-500")
    print(json.dumps(asyncio.run(run(args.calls, args.batch, args.gap_ms))))


if __name__ == "__main__":
    main()
