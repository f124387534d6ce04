"""The results written as JSON and as a markdown table with the machine it ran on:
the targets (bench/targets.py: ratios measured side by side, judged unless this is a
quick run), the absolute figures beside them, and every step's rows."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .config import BenchConfig
from .stats import fmt, spread
from .targets import SERVICES, evaluate, information

PROCESS_COLUMNS = (
    "gateway",
    "persona",
    "dispatcher",
    # CallHistoryService: the gateway reports each call to it off the webhook's path, so it is
    # not in 'mesh', but it runs on the same cores during every webhook step.
    "calls",
    "crm-standin",
    "livekit-standin",
    "floor",
    "bare-health",
    "loadgen",
)
# Legs of the paired steps, in the CPU-per-call table under the step's id.
PAIRED_LEG_NAMES = {"mesh": "mesh", "floor": "floor", "bare-hop": "bare hop", "bare": "bare Check", "get": "GetPersona"}


def machine() -> dict[str, Any]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "grpcio": version("grpcio"),
        "uvicorn": version("uvicorn"),
        # What uvicorn picks for "auto": uvloop/httptools when installed, asyncio/h11 otherwise.
        "uvicorn_loop": "uvloop" if find_spec("uvloop") else "asyncio",
        "uvicorn_http": "httptools" if find_spec("httptools") else "h11",
        # The gRPC core engine every process ran on (services/common/grpc_polling.py).
        "grpc_experiments": os.environ.get("GRPC_EXPERIMENTS", ""),
    }


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if "paired" in row:
        p = row["paired"]
        key = p["of"]
        value = {"rate_per_s": "rate/s", "p50_ms": "p50 ms"}.get(key, key)
        per_leg = "; ".join(
            f"{PAIRED_LEG_NAMES.get(name, name)}: " + " ".join(fmt(v) for v in leg[key])
            for name, leg in p["legs"].items()
        )
        notes.append(
            f"{value} per block, {per_leg}; block-pair ratios {spread(p['ratios'])}, median {fmt(p['ratio_median'])}"
        )
    if "overhead_ms" in row:
        o = row["overhead_ms"]
        notes.append(f"minus {row['injected_ms']:g} ms injected: p50 {fmt(o.get('p50'))} / p99 {fmt(o.get('p99'))} ms")
    if "overhead_net_ms" in row:
        n = row["overhead_net_ms"]
        notes.append(
            f"net of the stand-ins' timer overshoot ({row['standin_timer_overshoot_ms']['per_call']:g} ms/call): "
            f"p50 {fmt(n.get('p50'))} / p99 {fmt(n.get('p99'))} ms"
        )
    if "send_lag_ms" in row:
        sent = row.get("latency_from_send_ms", {})
        notes.append(
            f"generator late by p99 {fmt(row['send_lag_ms'].get('p99'))} ms; from the actual write: "
            f"p50 {fmt(sent.get('p50'))} / p99 {fmt(sent.get('p99'))} ms"
        )
    if "checks" in row:
        c = row["checks"]
        notes.append(f"CRM requests {c['crm_requests']}, dispatches {c['dispatches']}/{c['dispatches_expected']}")
    if row.get("default_personas"):
        notes.append(f"{row['default_personas']} default personas")
    if row.get("errors"):
        notes.append("errors " + ", ".join(f"{k}={v}" for k, v in row["errors"].items()))
    if row.get("signed_inline"):
        notes.append(f"{row['signed_inline']} signed during the run")
    if row.get("livekit_latency_ms") or row.get("crm_latency_ms"):
        notes.append(f"stand-ins CRM {row['crm_latency_ms']:g} / LiveKit {row['livekit_latency_ms']:g} ms")
    return "; ".join(notes)


def markdown(result: dict[str, Any]) -> str:
    m, cfg = result["machine"], result["config"]
    kind = "quick run: smoke test only, no targets judged" if cfg["quick"] else "full run"
    lines = [
        f"# Friday persona mesh benchmark ({kind})",
        "",
        f"{result['finished_at']} · {m['cores']} cores ({m['cpu'] or 'unknown CPU'}) · Python {m['python']} · "
        f"grpcio {m['grpcio']} (GRPC_EXPERIMENTS={m.get('grpc_experiments') or '(defaults)'}) · "
        f"uvicorn {m['uvicorn']} ({m['uvicorn_loop']} + {m['uvicorn_http']}) · "
        # services/common/event_loop.run picks the loop by the same rule as uvicorn's "auto".
        f"gRPC services on {m['uvicorn_loop']}",
        "",
        "Everything runs co-located on this machine: the three services, both stand-ins, the floor, the bare "
        "health server and the load generator (one process) share the same cores, so every number includes "
        "the load generator's and the stand-ins' CPU competing with the mesh's, and whatever else the machine "
        "runs meanwhile ('other' below).",
        "",
        "## Targets",
        "",
    ]
    if result["judged"]:
        lines += [
            "Each target compares two things measured side by side in this run (the mesh against the floor, "
            "GetPersona against a bare health Check), so the machine's speed cancels out.",
            "",
        ]
    else:
        lines += ["A quick run is a smoke test of the harness: too few calls to measure anything, nothing judged.", ""]
    lines += [
        "| target | measured | limit | result | from |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in result["targets"]:
        verdict = {True: "pass", False: "**MISS**", None: "n/a"}[t["passed"]] if result["judged"] else "not judged"
        measured = "-" if t["measured"] is None else f"{fmt(t['measured'])}{t['unit']}"
        lines.append(f"| {t['target']} | {measured} | {t['limit']} | {verdict} | {t['source']} |")
    lines += [
        "",
        "## Absolute figures (information, not judged)",
        "",
        "They move with the machine's speed: compare them only with a run on the same machine at the same time.",
        "",
        "| what | value | from |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {i['what']} | {i['value']} | {i['source']} |" for i in result["information"]]
    lines += [
        "",
        "## Scenarios",
        "",
        "Latency in ms: webhook written → 200 with the dispatch created (open loop: from the intended send time).",
        "",
        "| # | scenario | ok | errors | rate/s | p50 | p95 | p99 | max | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lat = row.get("latency_ms", {})
        cells = [row["id"], row["name"], row["ok"], row["error_count"], row.get("rate_per_s")]
        cells += [lat.get(k) for k in ("p50", "p95", "p99", "max")]
        lines.append("| " + " | ".join(fmt(c) for c in cells) + f" | {_notes(row)} |")
    with_processes = [row for row in result["rows"] if row["processes"]]  # paired steps keep theirs per leg
    lines += [
        "",
        "## Processes: peak RSS (MB) / CPU (% of one core) per scenario",
        "",
        "'machine' is the whole machine's busy CPU; 'other' the part none of these processes used "
        "(other work on the shared machine).",
        "",
        "| # | " + " | ".join(PROCESS_COLUMNS) + " | machine | other |",
        "| --- | " + " | ".join("---" for _ in PROCESS_COLUMNS) + " | --- | --- |",
    ]
    for row in with_processes:
        procs = row["processes"]
        cells = [
            f"{fmt(procs[p]['peak_rss_mb'])} / {fmt(procs[p]['cpu_pct'])}" if p in procs else "-"
            for p in PROCESS_COLUMNS
        ]
        cpu = row.get("machine_cpu", {})
        cells += [fmt(cpu.get("busy_pct")), fmt(cpu.get("unwatched_pct"))]
        lines.append(f"| {row['id']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## CPU per call (ms of CPU per webhook or RPC answered)",
        "",
        "Steadier than rates on a shared machine: other work changes how long a call waits, not how much CPU "
        "it costs. 'mesh' = gateway + persona + dispatcher; 'calls' (CallHistoryService, which the gateway "
        "reports each call to off the webhook's path) is not in it. The paired steps (6p, 7p) over all blocks "
        "of each leg.",
        "",
        "| # | mesh | " + " | ".join(PROCESS_COLUMNS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in PROCESS_COLUMNS) + " |",
    ]
    for sid, per_call in _cpu_per_call_rows(result["rows"]):
        mesh = sum(per_call.get(p) or 0 for p in SERVICES) or None
        cells = [fmt(mesh)] + [fmt(per_call.get(p)) for p in PROCESS_COLUMNS]
        lines.append(f"| {sid} | " + " | ".join(cells) + " |")
    if any(r.get("peak_rss_since_start") for r in result["rows"]):
        lines += ["", "(Peak RSS could not be reset per scenario here: peaks are since each process started.)"]
    lines += ["", f"Reproduce: `{result['command']}`", ""]
    return "\n".join(lines)


def _cpu_per_call_rows(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, float | None]]]:
    out: list[tuple[str, dict[str, float | None]]] = []
    for row in rows:
        if row["processes"]:
            out.append((row["id"], {p: s.get("cpu_ms_per_call") for p, s in row["processes"].items()}))
        for name, leg in row.get("paired", {}).get("legs", {}).items():
            out.append((f"{row['id']} {PAIRED_LEG_NAMES.get(name, name)}", leg["cpu_ms_per_call"]))
    return out


def write(rows: list[dict[str, Any]], cfg: BenchConfig, command: str) -> dict[str, Any]:
    result = {
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        # A quick run judges nothing: every target's "passed" is None.
        "judged": not cfg.quick,
        "targets": evaluate(rows, cfg),
        "information": information(rows, cfg),
        "rows": rows,
    }
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    (cfg.output_dir / f"{cfg.output_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (cfg.output_dir / f"{cfg.output_name}.md").write_text(markdown(result))
    return result
