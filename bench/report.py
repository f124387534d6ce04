"""Targets (README, Performance) checked against the rows, and the results written as JSON and
as a markdown table with the machine it ran on."""

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
from .scenarios import best_rate

SERVICES = ("gateway", "persona", "dispatcher")
PROCESS_COLUMNS = (
    "gateway",
    "persona",
    "dispatcher",
    "crm-standin",
    "livekit-standin",
    "floor",
    "bare-health",
    "loadgen",
)


def _row(rows: list[dict[str, Any]], sid: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["id"] == sid), None)


def _lat(row: dict[str, Any] | None, key: str) -> float | None:
    return None if row is None else row.get("latency_ms", {}).get(key)


def _target(
    name: str, measured: float | None, limit: float, *, at_most: bool, unit: str, source: str, exact: bool = False
) -> dict[str, Any]:
    if measured is None:
        passed = None
    elif exact:
        passed = measured == limit
    else:
        passed = measured <= limit if at_most else measured >= limit
    relation = "==" if exact else ("<=" if at_most else ">=")
    return {
        "target": name,
        "measured": measured,
        "limit": f"{relation} {limit:g}{unit}",
        "unit": unit,
        "passed": passed,
        "source": source,
    }


def evaluate(rows: list[dict[str, Any]], cfg: BenchConfig) -> list[dict[str, Any]]:
    open_rows = sorted((r for r in rows if r["id"].startswith("2-")), key=lambda r: r["params"]["rate"])
    at_100 = next((r for r in open_rows if r["params"]["rate"] == 100), open_rows[0] if open_rows else None)
    open_src = f"scenario {at_100['id']}" if at_100 else "missing"
    best = best_rate([r for r in rows if r["id"].startswith("3-")], cfg.saturation_p99_ms)
    mesh_p50, floor_p50 = _lat(_row(rows, "1a"), "p50"), _lat(_row(rows, "7a"), "p50")
    burst = _row(rows, "4")
    cold = _row(rows, "5")
    bare, get = _row(rows, "6-bare"), _row(rows, "6-get")
    peak = {
        name: max((r["processes"].get(name, {}).get("peak_rss_mb") or 0 for r in rows), default=None)
        for name in SERVICES
    }
    targets = [
        _target("warm p50 at 100/s", _lat(at_100, "p50"), 3, at_most=True, unit=" ms", source=open_src),
        _target("warm p99 at 100/s", _lat(at_100, "p99"), 10, at_most=True, unit=" ms", source=open_src),
        _target(
            f"saturation (p99 < {cfg.saturation_p99_ms:g} ms, no errors)",
            best["rate_per_s"] if best else 0.0,
            600,
            at_most=False,
            unit="/s",
            source=f"scenario {best['id']}" if best else "no level qualified",
        ),
        _mesh_floor_target(_row(rows, "7p"), mesh_p50, floor_p50),
    ]
    if burst is not None:
        checks = burst["checks"]
        targets += [
            _target(
                "cold burst CRM requests", checks["crm_requests"], 1, at_most=True, unit="", source="4", exact=True
            ),
            _target(
                "cold burst dispatches",
                checks["dispatches"],
                checks["dispatches_expected"],
                at_most=True,
                unit="",
                source="4",
                exact=True,
            ),  # fmt: skip
            _target(
                "cold burst calls answered 200",
                checks["answered_ok"],
                checks["dispatches_expected"],
                at_most=True,
                unit="",
                source="4",
                exact=True,
            ),  # fmt: skip
        ]
    gross = (cold or {}).get("overhead_ms", {}).get("p50")
    net = (cold or {}).get("overhead_net_ms", {}).get("p50", gross)
    overshoot = (cold or {}).get("standin_timer_overshoot_ms", {}).get("per_call")
    targets.append(
        _target(
            "cold-path overhead p50",
            net,
            5,
            at_most=True,
            unit=" ms",
            source=f"5: {_fmt(gross)} ms minus the stand-ins' timer overshoot {_fmt(overshoot)} ms",
        )
    )
    ratio = round(100 * get["rate_per_s"] / bare["rate_per_s"], 1) if get and bare and bare["rate_per_s"] else None
    cpu_get = get["processes"]["persona"].get("cpu_ms_per_call") if get else None
    cpu_bare = bare["processes"]["bare-health"].get("cpu_ms_per_call") if bare else None
    cpu_ratio = f"{100 * cpu_bare / cpu_get:.0f} %" if cpu_get and cpu_bare else "-"
    targets.append(
        _target(
            "GetPersona RPS / bare health RPS",
            ratio,
            75,
            at_most=False,
            unit=" %",
            source=f"6 (by server CPU per call, steadier on a shared machine: {cpu_ratio})",
        )
    )
    for name in SERVICES:
        targets.append(_target(f"{name} peak RSS", peak[name], 150, at_most=True, unit=" MB", source="all scenarios"))
    return targets


def _mesh_floor_target(paired: dict[str, Any] | None, mesh_p50: float | None, floor_p50: float | None) -> dict:
    """From 7p's alternating blocks when it ran (drift cancels out), else 1a / 7a."""
    apart = round(mesh_p50 / floor_p50, 2) if mesh_p50 and floor_p50 else None
    if paired is None:
        return _target("mesh / floor p50", apart, 1.5, at_most=True, unit="x", source="1a / 7a")
    p = paired["paired"]
    spread = f"{_fmt(p['ratios'][0])}–{_fmt(p['ratios'][-1])}"
    source = f"7p: median of {len(p['ratios'])} block pairs ({spread}); 1a / 7a: {_fmt(apart)}x"
    return _target("mesh / floor p50", round(p["ratio_median"], 2), 1.5, at_most=True, unit="x", source=source)


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


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if "paired" in row:
        p = row["paired"]
        notes.append(
            "p50 per block, mesh: "
            + " ".join(_fmt(v) for v in p["mesh_p50_ms"])
            + "; floor: "
            + " ".join(_fmt(v) for v in p["floor_p50_ms"])
            + f"; median ratio {_fmt(p['ratio_median'])}"
        )
    if "overhead_ms" in row:
        o = row["overhead_ms"]
        notes.append(
            f"minus {row['injected_ms']:g} ms injected: p50 {_fmt(o.get('p50'))} / p99 {_fmt(o.get('p99'))} ms"
        )
    if "overhead_net_ms" in row:
        n = row["overhead_net_ms"]
        notes.append(
            f"net of the stand-ins' timer overshoot ({row['standin_timer_overshoot_ms']['per_call']:g} ms/call): "
            f"p50 {_fmt(n.get('p50'))} / p99 {_fmt(n.get('p99'))} ms"
        )
    if "send_lag_ms" in row:
        sent = row.get("latency_from_send_ms", {})
        notes.append(
            f"generator late by p99 {_fmt(row['send_lag_ms'].get('p99'))} ms; from the actual write: "
            f"p50 {_fmt(sent.get('p50'))} / p99 {_fmt(sent.get('p99'))} ms"
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
    kind = "quick run: smoke only, not a measurement" if cfg["quick"] else "full run"
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
        "the load generator's and the stand-ins' CPU competing with the mesh's.",
        "",
        "## Targets",
        "",
        "| target | measured | limit | result | from |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in result["targets"]:
        verdict = {True: "pass", False: "**MISS**", None: "n/a"}[t["passed"]]
        measured = "-" if t["measured"] is None else f"{_fmt(t['measured'])}{t['unit']}"
        lines.append(f"| {t['target']} | {measured} | {t['limit']} | {verdict} | {t['source']} |")
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
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + f" | {_notes(row)} |")
    measured = [row for row in result["rows"] if row["processes"]]  # 7p keeps no process figures
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
    for row in measured:
        procs = row["processes"]
        cells = [
            f"{_fmt(procs[p]['peak_rss_mb'])} / {_fmt(procs[p]['cpu_pct'])}" if p in procs else "-"
            for p in PROCESS_COLUMNS
        ]
        cpu = row.get("machine_cpu", {})
        cells += [_fmt(cpu.get("busy_pct")), _fmt(cpu.get("unwatched_pct"))]
        lines.append(f"| {row['id']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## CPU per call (ms of CPU per webhook or RPC answered)",
        "",
        "Steadier than rates on a shared machine: other work changes how long a call waits, not how much CPU "
        "it costs. 'mesh' = gateway + persona + dispatcher.",
        "",
        "| # | mesh | " + " | ".join(PROCESS_COLUMNS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in PROCESS_COLUMNS) + " |",
    ]
    for row in measured:
        procs = row["processes"]
        per_call = {p: procs.get(p, {}).get("cpu_ms_per_call") for p in PROCESS_COLUMNS}
        mesh = sum(per_call[p] or 0 for p in SERVICES) or None
        cells = [_fmt(mesh)] + [_fmt(per_call[p]) for p in PROCESS_COLUMNS]
        lines.append(f"| {row['id']} | " + " | ".join(cells) + " |")
    if any(r.get("peak_rss_since_start") for r in result["rows"]):
        lines += ["", "(Peak RSS could not be reset per scenario here: peaks are since each process started.)"]
    lines += ["", f"Reproduce: `{result['command']}`", ""]
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], cfg: BenchConfig, command: str) -> dict[str, Any]:
    result = {
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "targets": evaluate(rows, cfg),
        "rows": rows,
    }
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    (cfg.output_dir / f"{cfg.output_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (cfg.output_dir / f"{cfg.output_name}.md").write_text(markdown(result))
    return result
