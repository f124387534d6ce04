"""The benchmark's targets, and what it reports beside them.

Every target compares two things measured side by side in the same run: the mesh
against the floor (the same webhooks and LiveKit work in one process, bench/floor.py),
GetPersona against a bare health Check. The machine's speed drifts within minutes and
differs between machines, and a ratio measured this way carries neither. Absolute
figures (latencies, rates, CPU, RSS) are reported as information and never judged.
A quick run judges nothing: it is a smoke test of the harness.

`measurements(rows, cfg)` reads the numbers the targets need out of the result rows;
`targets(m)` judges them; `information(rows, cfg)` lists the absolute figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean, median
from typing import Any

from .config import BenchConfig
from .stats import fmt, spread

# Sequential webhook p50, mesh / floor. A little above the architecture's own cost, the
# floor plus two bare gRPC hops, which 7p measures in the same blocks and reports beside.
MESH_FLOOR_P50_MAX = 1.6
# Mesh saturation as a share of the floor's, both by the same rule.
SATURATION_SHARE_MIN = 0.65
# GetPersona's rate as a percentage of a bare grpc.aio health Check's.
GET_PERSONA_SHARE_MIN_PCT = 90.0
# A campaign number's GetPersona rate as a share of a single persona's: the per-call
# selection after the cache costs microseconds, not a second lookup.
CAMPAIGN_SHARE_MIN = 0.9
# Mesh CPU per webhook may exceed the floor's plus two bare hops' by this much.
HOPS = 2  # gateway -> PersonaService, gateway -> DispatcherService
CPU_ALLOWANCE_MS = 0.5
# A burst of first calls to one uncached number: PersonaService asks the CRM once.
BURST_CRM_REQUESTS = 1

SERVICES = ("gateway", "persona", "dispatcher")
Row = dict[str, Any]


@dataclass(frozen=True)
class Measurements:
    """What the targets read, all from one run. None: the scenario did not run."""

    mesh_floor_ratios: list[float] = field(default_factory=list)  # 7p, per block pair
    mesh_saturation: float | None = None  # /s, scenario 3
    mesh_saturation_at: str = ""
    floor_saturation: float | None = None  # /s, the floor's 7-cN in scenario 3
    floor_saturation_at: str = ""
    get_bare_ratios: list[float] = field(default_factory=list)  # 6p, per block pair
    campaign_ratios: list[float] = field(default_factory=list)  # 6p: campaign / persona GetPersona rate
    get_server_cpu_ms: float | None = None  # 6p: PersonaService per GetPersona
    bare_server_cpu_ms: float | None = None  # 6p: the bare server per Check
    mesh_cpu_ms: float | None = None  # 7p: gateway + persona + dispatcher, per webhook
    floor_cpu_ms: float | None = None  # 7p: the floor process, per webhook
    hop_cpu_ms: float | None = None  # 7p: bare server + its client, per call
    architecture_ratios: list[float] = field(default_factory=list)  # 7p: (floor + 2 hops) / floor p50
    mesh_livekit_calls: dict[str, float] | None = None  # 7p: per webhook, by Twirp method
    floor_livekit_calls: dict[str, float] | None = None
    burst_size: int | None = None  # scenario 4
    burst_crm_requests: int | None = None
    burst_dispatches: int | None = None
    burst_answered: int | None = None
    judged: bool = True


@dataclass(frozen=True)
class Target:
    name: str
    measured: float | str | None
    limit: str
    passed: bool | None  # None: not measured in this run
    source: str
    unit: str = ""

    def as_dict(self, judged: bool) -> dict[str, Any]:
        return {
            "target": self.name,
            "measured": self.measured,
            "unit": self.unit,
            "limit": self.limit,
            "passed": self.passed if judged else None,
            "source": self.source,
        }


def _median(values: list[float]) -> float | None:
    return round(median(values), 3) if values else None


def _at_most(measured: float | None, limit: float) -> bool | None:
    return None if measured is None else measured <= limit


def _at_least(measured: float | None, limit: float) -> bool | None:
    return None if measured is None else measured >= limit


def _equal(measured: int | None, expected: int | None) -> bool | None:
    return None if measured is None or expected is None else measured == expected


def targets(m: Measurements) -> list[Target]:
    mesh_floor = _median(m.mesh_floor_ratios)
    architecture = _median(m.architecture_ratios)
    campaign = _median(m.campaign_ratios)
    share = (
        round(m.mesh_saturation / m.floor_saturation, 3)
        if m.mesh_saturation is not None and m.floor_saturation
        else None
    )
    get_pct = None if not m.get_bare_ratios else round(100 * median(m.get_bare_ratios), 1)
    by_cpu = ""
    if m.get_server_cpu_ms and m.bare_server_cpu_ms:
        by_cpu = f"; by server CPU per call {100 * m.bare_server_cpu_ms / m.get_server_cpu_ms:.0f} %"
    cpu_limit = (
        None
        if m.floor_cpu_ms is None or m.hop_cpu_ms is None
        else round(m.floor_cpu_ms + HOPS * m.hop_cpu_ms + CPU_ALLOWANCE_MS, 3)
    )
    cpu_limit_text = f"floor + {HOPS} bare hops + {CPU_ALLOWANCE_MS:g} ms"
    if cpu_limit is not None:
        cpu_limit_text = (
            f"<= {fmt(cpu_limit)} ms = floor {fmt(m.floor_cpu_ms)} + {HOPS} × bare hop {fmt(m.hop_cpu_ms)} "
            f"+ {CPU_ALLOWANCE_MS:g}"
        )
    same_livekit = (
        None
        if m.mesh_livekit_calls is None or m.floor_livekit_calls is None
        else m.mesh_livekit_calls == m.floor_livekit_calls
    )
    out = [
        Target(
            "mesh / floor p50",
            mesh_floor,
            f"<= {MESH_FLOOR_P50_MAX:g}x",
            _at_most(mesh_floor, MESH_FLOOR_P50_MAX),
            f"7p: median of {len(m.mesh_floor_ratios)} block pairs ({spread(m.mesh_floor_ratios)}); "
            f"floor + {HOPS} bare hops: {fmt(architecture)}x",
            unit="x",
        ),
        Target(
            "mesh / floor saturation",
            share,
            f">= {SATURATION_SHARE_MIN:g}x",
            _at_least(share, SATURATION_SHARE_MIN),
            f"3: mesh {fmt(m.mesh_saturation)}/s ({m.mesh_saturation_at or '-'}), "
            f"floor {fmt(m.floor_saturation)}/s ({m.floor_saturation_at or '-'})",
            unit="x",
        ),
        Target(
            "GetPersona / bare health Check rate",
            get_pct,
            f">= {GET_PERSONA_SHARE_MIN_PCT:g} %",
            _at_least(get_pct, GET_PERSONA_SHARE_MIN_PCT),
            f"6p: median of {len(m.get_bare_ratios)} block pairs ({spread([100 * r for r in m.get_bare_ratios])} %)"
            + by_cpu,
            unit=" %",
        ),
        Target(
            "campaign / persona GetPersona rate",
            campaign,
            f">= {CAMPAIGN_SHARE_MIN:g}x",
            _at_least(campaign, CAMPAIGN_SHARE_MIN),
            f"6p: median of {len(m.campaign_ratios)} block pairs ({spread(m.campaign_ratios)}); selection per call",
            unit="x",
        ),
        Target(
            "mesh CPU per webhook",
            m.mesh_cpu_ms,
            cpu_limit_text,
            None if cpu_limit is None else _at_most(m.mesh_cpu_ms, cpu_limit),
            "7p, all blocks: gateway + persona + dispatcher; floor process; bare hop = bare server + its client",
            unit=" ms",
        ),
        Target(
            "floor makes the mesh's LiveKit calls",
            _calls_text(m.mesh_livekit_calls, m.floor_livekit_calls),
            "the same per webhook",
            same_livekit,
            "7p: LiveKit stand-in's calls per webhook, mesh and floor (the ratios compare only like work)",
        ),
        Target(
            "cold burst CRM requests",
            m.burst_crm_requests,
            f"== {BURST_CRM_REQUESTS}",
            _equal(m.burst_crm_requests, BURST_CRM_REQUESTS),
            f"4: {m.burst_size or '-'} simultaneous first calls to one uncached number",
        ),
        Target(
            "cold burst dispatches",
            m.burst_dispatches,
            f"== {m.burst_size if m.burst_size is not None else 'calls'}",
            _equal(m.burst_dispatches, m.burst_size),
            "4: one agent per call, none twice",
        ),
        Target(
            "cold burst calls answered 200",
            m.burst_answered,
            f"== {m.burst_size if m.burst_size is not None else 'calls'}",
            _equal(m.burst_answered, m.burst_size),
            "4",
        ),
    ]
    return out


def _calls_text(mesh: dict[str, float] | None, floor: dict[str, float] | None) -> str | None:
    if mesh is None or floor is None:
        return None

    def text(calls: dict[str, float]) -> str:
        return " + ".join(f"{method} {n:g}" for method, n in calls.items()) or "none"

    return f"mesh {text(mesh)}; floor {text(floor)}" if mesh != floor else f"both {text(mesh)}"


def best_rate(rows: list[Row], p99_limit_ms: float) -> Row | None:
    """The closed-loop step with the highest rate whose p99 stayed under the limit, with no errors."""
    good = [r for r in rows if not r["error_count"] and r["latency_ms"].get("p99", 1e9) <= p99_limit_ms]
    return max(good, key=lambda r: r["rate_per_s"], default=None)


def _row(rows: list[Row], sid: str) -> Row | None:
    return next((r for r in rows if r["id"] == sid), None)


def _legs(rows: list[Row], sid: str) -> dict[str, Any]:
    row = _row(rows, sid)
    return row["paired"]["legs"] if row is not None else {}


def _ratios(rows: list[Row], sid: str) -> list[float]:
    row = _row(rows, sid)
    return list(row["paired"]["ratios"]) if row is not None else []


def _cpu(leg: dict[str, Any] | None, names: tuple[str, ...]) -> float | None:
    if not leg:
        return None
    values = [leg["cpu_ms_per_call"].get(name) for name in names]
    return None if any(v is None for v in values) else round(sum(values), 3)


def _saturation(rows: list[Row], prefix: str, p99_limit_ms: float) -> tuple[float | None, str]:
    steps = [r for r in rows if r["id"].startswith(prefix)]
    if not steps:
        return None, ""
    best = best_rate(steps, p99_limit_ms)
    if best is None:
        return 0.0, "no level qualified"
    return best["rate_per_s"], f"{best['id']}: {best['params']['concurrency']} in flight"


def measurements(rows: list[Row], cfg: BenchConfig) -> Measurements:
    seq = _legs(rows, "7p")
    mesh, floor, hop = seq.get("mesh"), seq.get("floor"), seq.get("bare-hop")
    architecture = []
    if floor and hop:
        for f, h in zip(floor["p50_ms"], hop["p50_ms"], strict=True):
            if f and h is not None:
                architecture.append(round((f + HOPS * h) / f, 3))
    grpc = _legs(rows, "6p")
    mesh_sat, mesh_at = _saturation(rows, "3-", cfg.saturation_p99_ms)
    floor_sat, floor_at = _saturation(rows, "7-c", cfg.saturation_p99_ms)
    burst = _row(rows, "4")
    checks = burst["checks"] if burst is not None else {}
    return Measurements(
        mesh_floor_ratios=_ratios(rows, "7p"),
        mesh_saturation=mesh_sat,
        mesh_saturation_at=mesh_at,
        floor_saturation=floor_sat,
        floor_saturation_at=floor_at,
        get_bare_ratios=_ratios(rows, "6p"),
        campaign_ratios=list((_row(rows, "6p") or {}).get("campaign_ratios", [])),
        get_server_cpu_ms=_cpu(grpc.get("get"), ("persona",)),
        bare_server_cpu_ms=_cpu(grpc.get("bare"), ("bare-health",)),
        mesh_cpu_ms=_cpu(mesh, SERVICES),
        floor_cpu_ms=_cpu(floor, ("floor",)),
        hop_cpu_ms=_cpu(hop, ("bare-health", "loadgen")),
        architecture_ratios=sorted(architecture),
        mesh_livekit_calls=mesh.get("livekit_calls_per_call") if mesh else None,
        floor_livekit_calls=floor.get("livekit_calls_per_call") if floor else None,
        burst_size=checks.get("dispatches_expected"),
        burst_crm_requests=checks.get("crm_requests"),
        burst_dispatches=checks.get("dispatches"),
        burst_answered=checks.get("answered_ok"),
        judged=not cfg.quick,
    )


def _whole_machine_cpu(legs: dict[str, Any]) -> tuple[str, str, str] | None:
    """Every process's CPU per webhook in 7p's mesh and floor legs (stand-ins, load
    generator and CallHistoryService included), and their ratio: at saturation the
    two cores are the limit, so the floor's total over the mesh's is the share of the
    floor's rate the mesh can reach at best (scenario 3 compares the rates)."""
    mesh, floor = legs.get("mesh"), legs.get("floor")
    if not mesh or not floor:
        return None
    totals = []
    for leg in (mesh, floor):
        values = [v for v in leg["cpu_ms_per_call"].values() if v is not None]
        totals.append(sum(values) if values else None)
    if not totals[0] or not totals[1]:
        return None
    biggest = sorted(((v, n) for n, v in mesh["cpu_ms_per_call"].items() if v), reverse=True)[:4]
    return (
        "CPU per webhook, every process: mesh / floor (the saturation share the CPU allows)",
        f"{fmt(totals[0])} / {fmt(totals[1])} ms ({totals[1] / totals[0]:.2f}x)",
        "7p, all blocks; mesh's largest: " + ", ".join(f"{n} {fmt(v)}" for v, n in biggest),
    )


def evaluate(rows: list[Row], cfg: BenchConfig) -> list[dict[str, Any]]:
    m = measurements(rows, cfg)
    return [t.as_dict(m.judged) for t in targets(m)]


def information(rows: list[Row], cfg: BenchConfig) -> list[dict[str, str]]:
    """Absolute figures of this run, for reading beside the targets: never judged, and
    only comparable with another run's as far as the machine stayed the same."""
    out: list[dict[str, str]] = []

    def add(what: str, value: str, source: str) -> None:
        out.append({"what": what, "value": value, "source": source})

    open_rows = sorted((r for r in rows if r["id"].startswith("2-")), key=lambda r: r["params"]["rate"])
    at_100 = next((r for r in open_rows if r["params"]["rate"] == 100), open_rows[0] if open_rows else None)
    if at_100 is not None:
        lat = at_100["latency_ms"]
        rate = at_100["params"]["rate"]
        add(f"warm p50 / p99 at {rate:g}/s", f"{fmt(lat.get('p50'))} / {fmt(lat.get('p99'))} ms", at_100["id"])
    m = measurements(rows, cfg)
    if m.mesh_saturation is not None or m.floor_saturation is not None:
        add(
            f"saturation (p99 < {cfg.saturation_p99_ms:g} ms, no errors): mesh / floor",
            f"{fmt(m.mesh_saturation)} / {fmt(m.floor_saturation)} /s",
            f"{m.mesh_saturation_at or '-'}; {m.floor_saturation_at or '-'}",
        )
    legs = _legs(rows, "7p")
    if legs:
        p50 = {name: _median([v for v in leg["p50_ms"] if v is not None]) for name, leg in legs.items()}
        add(
            "sequential p50: mesh / floor / bare hop",
            f"{fmt(p50.get('mesh'))} / {fmt(p50.get('floor'))} / {fmt(p50.get('bare-hop'))} ms",
            "7p, median of the blocks",
        )
        add(
            "CPU per call: mesh / floor / bare hop",
            f"{fmt(m.mesh_cpu_ms)} / {fmt(m.floor_cpu_ms)} / {fmt(m.hop_cpu_ms)} ms",
            "7p, all blocks",
        )
    whole = _whole_machine_cpu(legs)
    if whole is not None:
        add(*whole)
    apart = [_row(rows, "1a"), _row(rows, "7a")]
    if apart[0] is not None and apart[1] is not None:
        mesh_p50, floor_p50 = apart[0]["latency_ms"].get("p50"), apart[1]["latency_ms"].get("p50")
        if mesh_p50 and floor_p50:
            add("mesh / floor p50, minutes apart", f"{mesh_p50 / floor_p50:.2f}x", "1a / 7a (drift included)")
    bare, get = _row(rows, "6-bare"), _row(rows, "6-get")
    if bare is not None and get is not None and bare["rate_per_s"]:
        cpu_get = get["processes"].get("persona", {}).get("cpu_ms_per_call")
        cpu_bare = bare["processes"].get("bare-health", {}).get("cpu_ms_per_call")
        by_cpu = f"; by server CPU per call {100 * cpu_bare / cpu_get:.0f} %" if cpu_get and cpu_bare else ""
        add(
            "GetPersona / bare health Check rate, one after the other",
            f"{100 * get['rate_per_s'] / bare['rate_per_s']:.1f} %{by_cpu}",
            f"6-get / 6-bare, {fmt(get['rate_per_s'])} / {fmt(bare['rate_per_s'])} /s",
        )
    cold = _row(rows, "5")
    if cold is not None and "overhead_ms" in cold:
        net = (cold.get("overhead_net_ms") or cold["overhead_ms"]).get("p50")
        add(
            "cold-path overhead p50",
            f"{fmt(net)} ms",
            f"5: latency minus the stand-ins' {cold['injected_ms']:g} ms and their timer overshoot",
        )
    peaks = {
        name: max((r["processes"].get(name, {}).get("peak_rss_mb") or 0 for r in rows), default=0) for name in SERVICES
    }
    if any(peaks.values()):
        add("peak RSS: " + " / ".join(SERVICES), " / ".join(f"{peaks[n]:.0f}" for n in SERVICES) + " MB", "all steps")
    other = [
        r["machine_cpu"]["unwatched_pct"] for r in rows if r.get("machine_cpu", {}).get("unwatched_pct") is not None
    ]
    if other:
        add(
            "other work on the machine (CPU none of these processes used)",
            f"mean {mean(other):.0f} %, max {max(other):.0f} % of one core",
            "every step with process figures",
        )
    return out
