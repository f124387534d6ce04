"""GetCallStats' arithmetic over call records: counts, default-persona share, and
median / 95th percentile times (nearest-rank, so every figure is a time some call had)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from friday.calls.v1.call_history_service_pb2 import CallStats
from friday.calls.v1.call_pb2 import Call, CallOutcome
from services.calls.records import millis, uses_default


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def call_stats(calls: Iterable[Call]) -> CallStats:
    group = list(calls)
    answers = [c.answer_seconds for c in group if c.outcome == CallOutcome.CALL_OUTCOME_ANSWERED]
    durations = [c.duration_seconds for c in group if c.HasField("ended_at")]
    dispatched = [c for c in group if c.dispatch.persona_source]
    return CallStats(
        calls=len(group),
        answered=len(answers),
        no_agent=sum(1 for c in group if c.outcome == CallOutcome.CALL_OUTCOME_NO_AGENT),
        abandoned=sum(1 for c in group if c.outcome == CallOutcome.CALL_OUTCOME_ABANDONED),
        default_share=(sum(1 for c in dispatched if uses_default(c.dispatch)) / len(dispatched)) if dispatched else 0.0,
        median_answer_seconds=percentile(answers, 0.5),
        p95_answer_seconds=percentile(answers, 0.95),
        median_duration_seconds=percentile(durations, 0.5),
    )


@dataclass(frozen=True)
class Grouped:
    buckets: list[tuple[int, list[Call]]]  # (bucket start ms, calls), oldest first
    personas: list[tuple[str, str, list[Call]]]  # (persona id, version, calls), most calls first


def group(calls: Iterable[Call], bucket_ms: int) -> Grouped:
    by_bucket: dict[int, list[Call]] = {}
    by_persona: dict[tuple[str, str], list[Call]] = {}
    for call in calls:
        start = millis(call.started_at)
        by_bucket.setdefault(start - start % bucket_ms, []).append(call)
        by_persona.setdefault((call.dispatch.persona_id, call.dispatch.persona_version), []).append(call)
    return Grouped(
        buckets=sorted(by_bucket.items()),
        personas=[
            (pid, version, members)
            for (pid, version), members in sorted(by_persona.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    )
