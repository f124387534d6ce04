"""Summaries of steps measured in alternating blocks (Bench.alternate): per leg, the
value of every block and the CPU per call over all of its blocks; between two legs,
the ratio of each block pair and their median."""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any


def summarize_leg(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One leg's blocks -> p50 and rate per block, calls, and each process's CPU ms per
    call over all blocks (None where a reading was missing)."""
    calls = sum(b["ok"] + b["error_count"] for b in blocks)
    names = {name for b in blocks for name in b.get("cpu_s", {})}
    cpu: dict[str, float | None] = {}
    for name in sorted(names):
        used = [b.get("cpu_s", {}).get(name) for b in blocks]
        known = [u for u in used if u is not None]
        cpu[name] = round(1000 * sum(known) / calls, 3) if calls and len(known) == len(used) else None
    summary: dict[str, Any] = {
        "p50_ms": [b["latency_ms"].get("p50") for b in blocks],
        "rate_per_s": [b.get("rate_per_s") for b in blocks],
        "ok": sum(b["ok"] for b in blocks),
        "error_count": sum(b["error_count"] for b in blocks),
        "cpu_ms_per_call": cpu,
    }
    livekit: Counter[str] = Counter()
    for b in blocks:
        livekit.update(b.get("livekit_calls", {}))
    if livekit and calls:
        summary["livekit_calls_per_call"] = {method: round(n / calls, 3) for method, n in sorted(livekit.items())}
    return summary


def block_ratios(numerators: list[float | None], denominators: list[float | None]) -> list[float]:
    """Ratio of each block pair, sorted; pairs with a missing or zero value are left out."""
    return sorted(round(n / d, 3) for n, d in zip(numerators, denominators, strict=True) if n is not None and d)


def paired(legs: dict[str, dict[str, Any]], ratios: list[float], *, of: str) -> dict[str, Any]:
    """The paired step's record; `of` names the per-block value the ratios divide (a leg key)."""
    return {"legs": legs, "of": of, "ratios": ratios, "ratio_median": round(median(ratios), 3) if ratios else None}
