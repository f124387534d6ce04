"""Latency summaries: nearest-rank percentiles over every sample (no histogram
buckets, so a p99 is a latency some request really had); how the report prints figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PERCENTILES = (50, 90, 95, 99, 99.9)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Latencies in seconds -> {"count", "mean", "p50", ..., "max"} in milliseconds."""
    values = sorted(s * 1000 for s in seconds)
    summary: dict[str, float] = {"count": len(values)}
    if not values:
        return summary
    summary["mean"] = round(sum(values) / len(values), 3)
    for pct in PERCENTILES:
        summary[f"p{pct:g}"] = round(percentile(values, pct), 3)
    summary["min"] = round(values[0], 3)
    summary["max"] = round(values[-1], 3)
    return summary


def minus(summary: dict[str, float], offset_ms: float) -> dict[str, float]:
    """The same summary with a constant taken off every latency (the stand-ins' injected delay)."""
    return {k: (round(v - offset_ms, 3) if k != "count" else v) for k, v in summary.items()}


def fmt(value: Any) -> str:
    """A figure as the report prints it: 3 significant digits or so, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def spread(values: Sequence[float]) -> str:
    return f"{fmt(min(values))}–{fmt(max(values))}" if values else "-"
