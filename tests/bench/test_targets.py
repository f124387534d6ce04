"""The targets judge ratios measured side by side: synthetic numbers on both sides of
every limit, rows shaped as the scenarios write them, and a quick run judging nothing.
No timing is measured or asserted here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench import targets
from bench.config import BenchConfig
from bench.paired import block_ratios, paired, summarize_leg
from bench.report import markdown, write
from bench.stats import fmt
from bench.targets import Measurements

PASSING = Measurements(
    mesh_floor_ratios=[1.4, 1.5, 1.55],
    mesh_saturation=650.0,
    mesh_saturation_at="3-c16: 16 in flight",
    floor_saturation=1000.0,
    floor_saturation_at="7-c16: 16 in flight",
    get_bare_ratios=[0.9, 0.95, 0.97],
    campaign_ratios=[0.9, 0.96, 1.01],
    mesh_cpu_ms=3.0,
    floor_cpu_ms=1.5,
    hop_cpu_ms=0.5,
    architecture_ratios=[1.45, 1.5],
    mesh_livekit_calls={"CreateDispatch": 1.0, "ListDispatch": 1.0},
    floor_livekit_calls={"CreateDispatch": 1.0, "ListDispatch": 1.0},
    burst_size=200,
    burst_crm_requests=1,
    burst_dispatches=200,
    burst_answered=200,
)


def verdicts(m: Measurements) -> dict[str, bool | None]:
    return {t.name: t.passed for t in targets.targets(m)}


def test_every_target_passes_at_or_inside_its_limit() -> None:
    assert set(verdicts(PASSING).values()) == {True}


def test_limits_are_the_ratios() -> None:
    assert targets.MESH_FLOOR_P50_MAX == 1.6
    assert targets.SATURATION_SHARE_MIN == 0.65
    assert targets.GET_PERSONA_SHARE_MIN_PCT == 90.0
    assert targets.CAMPAIGN_SHARE_MIN == 0.9
    assert targets.HOPS == 2 and targets.CPU_ALLOWANCE_MS == 0.5
    assert targets.BURST_CRM_REQUESTS == 1


@pytest.mark.parametrize(
    ("change", "missed"),
    [
        # The median decides, not the worst block pair.
        ({"mesh_floor_ratios": [1.5, 1.6, 2.5]}, None),
        ({"mesh_floor_ratios": [1.5, 1.61, 1.62]}, "mesh / floor p50"),
        ({"mesh_saturation": 650.0, "floor_saturation": 1000.0}, None),  # 0.65 exactly
        ({"mesh_saturation": 649.0, "floor_saturation": 1000.0}, "mesh / floor saturation"),
        ({"mesh_saturation": 0.0, "mesh_saturation_at": "no level qualified"}, "mesh / floor saturation"),
        ({"get_bare_ratios": [0.8, 0.9, 0.99]}, None),  # median 90 %
        ({"get_bare_ratios": [0.85, 0.89, 0.99]}, "GetPersona / bare health Check rate"),
        ({"campaign_ratios": [0.8, 0.9, 1.2]}, None),  # median 0.9 exactly
        ({"campaign_ratios": [0.8, 0.89, 1.2]}, "campaign / persona GetPersona rate"),
        ({"mesh_cpu_ms": 3.0}, None),  # 1.5 + 2 * 0.5 + 0.5 exactly
        ({"mesh_cpu_ms": 3.01}, "mesh CPU per webhook"),
        ({"hop_cpu_ms": 0.49}, "mesh CPU per webhook"),  # the allowance follows the floor and the hops
        ({"floor_livekit_calls": {"CreateDispatch": 1.0}}, "floor makes the mesh's LiveKit calls"),
        ({"burst_crm_requests": 2}, "cold burst CRM requests"),
        ({"burst_dispatches": 201}, "cold burst dispatches"),
        ({"burst_answered": 199}, "cold burst calls answered 200"),
    ],
)
def test_each_limit_judges_its_own_ratio(change: dict[str, Any], missed: str | None) -> None:
    judged = verdicts(replace(PASSING, **change))
    assert [name for name, passed in judged.items() if passed is False] == ([missed] if missed else [])
    assert None not in judged.values()


def test_the_verdicts_do_not_move_with_the_machine() -> None:
    """The same run on a machine 2.5x slower: the rates move, their ratio and verdict do not."""
    for mesh, floor in ((650.0, 1000.0), (649.0, 1000.0)):
        fast = verdicts(replace(PASSING, mesh_saturation=mesh, floor_saturation=floor))
        slow = verdicts(replace(PASSING, mesh_saturation=mesh / 2.5, floor_saturation=floor / 2.5))
        assert fast == slow


def test_what_a_run_did_not_measure_is_not_judged() -> None:
    judged = verdicts(Measurements())
    assert set(judged.values()) == {None}
    one_side = verdicts(replace(PASSING, floor_saturation=None, floor_cpu_ms=None, floor_livekit_calls=None))
    assert one_side["mesh / floor saturation"] is None
    assert one_side["mesh CPU per webhook"] is None
    assert one_side["floor makes the mesh's LiveKit calls"] is None
    assert one_side["mesh / floor p50"] is True


def _block(p50: float, rate: float, calls: int, cpu_s: dict[str, float], livekit: bool = True) -> dict[str, Any]:
    block: dict[str, Any] = {
        "latency_ms": {"p50": p50},
        "rate_per_s": rate,
        "ok": calls,
        "error_count": 0,
        "cpu_s": cpu_s,
    }
    if livekit:
        block["livekit_calls"] = {"ListDispatch": calls, "CreateDispatch": calls}
    return block


def _paired_row(sid: str, blocks: dict[str, list[dict[str, Any]]], num: str, den: str, of: str) -> dict[str, Any]:
    legs = {name: summarize_leg(b) for name, b in blocks.items()}
    return {
        "id": sid,
        "name": sid,
        "ok": 1,
        "error_count": 0,
        "processes": {},
        "paired": paired(legs, block_ratios(legs[num][of], legs[den][of]), of=of),
    }


def _closed(sid: str, concurrency: int, rate: float, p99: float, errors: int = 0) -> dict[str, Any]:
    return {
        "id": f"{sid}-c{concurrency}",
        "name": "closed",
        "ok": 100,
        "error_count": errors,
        "rate_per_s": rate,
        "latency_ms": {"p50": p99 / 2, "p99": p99},
        "params": {"concurrency": concurrency},
        "processes": {"gateway": {"peak_rss_mb": 90.0, "cpu_pct": 50.0, "cpu_ms_per_call": 1.0}},
        "machine_cpu": {"busy_pct": 150.0, "unwatched_pct": 40.0},
    }


def synthetic_rows() -> list[dict[str, Any]]:
    """A run's rows as the scenarios write them (only the fields the targets read)."""
    services = {"gateway": 0.45, "persona": 0.15, "dispatcher": 0.6}  # CPU s per 300-call block
    mesh = [_block(p50, 200.0, 300, {**services, "floor": 0.0, "loadgen": 0.05}) for p50 in (4.0, 4.4, 3.9)]
    floor = [_block(p50, 400.0, 300, {"floor": 0.45, "loadgen": 0.05}) for p50 in (2.5, 2.75, 3.0)]
    hop = [_block(0.6, 1500.0, 300, {"bare-health": 0.09, "loadgen": 0.06}, livekit=False) for _ in range(3)]
    bare = [_block(5.0, rate, 2000, {"bare-health": 0.8}, livekit=False) for rate in (2500.0, 2400.0)]
    get = [_block(5.5, rate, 2000, {"persona": 0.9}, livekit=False) for rate in (2300.0, 2280.0)]
    return [
        _closed("3", 8, 450.0, 30.0),
        _closed("7", 8, 700.0, 15.0),
        _closed("3", 16, 480.0, 49.0),
        _closed("7", 16, 760.0, 30.0),
        _closed("3", 32, 500.0, 90.0),  # the highest rate, but p99 over the limit
        _closed("7", 32, 800.0, 45.0),
        _closed("7", 64, 900.0, 40.0, errors=3),  # errors disqualify a level
        {
            "id": "4",
            "name": "cold burst",
            "ok": 200,
            "error_count": 0,
            "processes": {},
            "checks": {"crm_requests": 1, "dispatches": 200, "dispatches_expected": 200, "answered_ok": 200},
        },
        _paired_row("6p", {"bare": bare, "get": get}, "get", "bare", "rate_per_s"),
        _paired_row("7p", {"mesh": mesh, "floor": floor, "bare-hop": hop}, "mesh", "floor", "p50_ms"),
    ]


def test_measurements_read_the_rows_the_scenarios_write() -> None:
    m = targets.measurements(synthetic_rows(), BenchConfig())
    assert m.mesh_floor_ratios == [1.3, 1.6, 1.6]  # per block pair, sorted
    assert (m.mesh_saturation, m.floor_saturation) == (480.0, 800.0)
    assert m.mesh_saturation_at.startswith("3-c16") and m.floor_saturation_at.startswith("7-c32")
    assert m.get_bare_ratios == [0.92, 0.95]
    assert (m.bare_server_cpu_ms, m.get_server_cpu_ms) == (0.4, 0.45)  # 0.8 / 0.9 s per 2000 calls
    assert m.mesh_cpu_ms == 4.0  # (0.45 + 0.15 + 0.6) s / 300 calls, all three services
    assert m.floor_cpu_ms == 1.5
    assert m.hop_cpu_ms == 0.5  # server + client
    assert m.mesh_livekit_calls == m.floor_livekit_calls == {"CreateDispatch": 1.0, "ListDispatch": 1.0}
    assert m.architecture_ratios[0] == round((3.0 + 2 * 0.6) / 3.0, 3)
    judged = verdicts(m)
    assert judged["mesh / floor p50"] is True  # median 1.6
    assert judged["mesh / floor saturation"] is False  # 480 / 800 = 0.6
    assert judged["GetPersona / bare health Check rate"] is True  # median 93.5 %
    assert judged["mesh CPU per webhook"] is False  # 4.0 > 1.5 + 2 * 0.5 + 0.5


def test_a_quick_run_judges_nothing(tmp_path: Any) -> None:
    cfg = replace(BenchConfig.quick_run(), output_dir=tmp_path)
    result = write(synthetic_rows(), cfg, "python -m bench --quick")
    assert result["judged"] is False
    assert {t["passed"] for t in result["targets"]} == {None}
    assert any(t["measured"] is not None for t in result["targets"])  # still measured and shown
    table = markdown(result)
    assert "no targets judged" in table.splitlines()[0]
    assert "**MISS**" not in table and "| pass |" not in table


def test_a_full_run_reports_misses_and_absolute_figures_apart(tmp_path: Any) -> None:
    result = write(synthetic_rows(), replace(BenchConfig(), output_dir=tmp_path), "python -m bench")
    assert result["judged"] is True
    missed = {t["target"] for t in result["targets"] if t["passed"] is False}
    assert missed == {"mesh / floor saturation", "mesh CPU per webhook"}
    table = (tmp_path / "latest.md").read_text()
    assert "(full run)" in table.splitlines()[0]
    targets_part, info_part = table.split("## Absolute figures (information, not judged)")
    assert "| mesh / floor saturation | 0.60x | >= 0.65x | **MISS** |" in targets_part
    # Absolute figures are listed, never with a verdict.
    assert "saturation (p99 < 50 ms, no errors): mesh / floor | 480.0 / 800.0 /s" in info_part
    assert "MISS" not in info_part.split("## Scenarios")[0]


def test_the_cpu_of_every_process_bounds_the_saturation_share() -> None:
    # 7p's mesh leg: (0.45 + 0.15 + 0.6 + 0.05) s / 300 calls; the floor's (0.45 + 0.05) s / 300.
    info = {row["what"]: row for row in targets.information(synthetic_rows(), BenchConfig())}
    row = info["CPU per webhook, every process: mesh / floor (the saturation share the CPU allows)"]
    assert row["value"] == f"{fmt(1.25 / 0.3)} / {fmt(0.5 / 0.3)} ms (0.40x)"
    assert row["source"].startswith("7p, all blocks; mesh's largest: dispatcher 2.00, gateway 1.50")
