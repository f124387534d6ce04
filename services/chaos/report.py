"""The fault matrix as a Markdown table (what `friday chaos` prints and the README quotes)
and as JSON (`friday chaos --json`): one object per fault, its keys always in the same
order, so that runs compare line by line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .records import ABANDONED, ANSWERED, NO_AGENT
from .runner import FaultResult

HEADER = (
    "fault",
    "calls",
    "0-dispatch",
    ">1-dispatch",
    "healed doubles",
    "wrong persona",
    "default persona",
    "redelivered",
    "p99 to dispatch (s)",
    "records",
    "answered",
    "missing",
    "extra",
    "wrong record",
)


def _checked(result: FaultResult, value: int) -> str:
    return str(value) if result.records_checked else "-"


def format_table(results: Iterable[FaultResult]) -> str:
    rows = [HEADER]
    for r in results:
        p99 = "-" if r.p99_seconds is None else f"{r.p99_seconds:.2f}"
        rows.append(
            (
                r.fault,
                str(r.calls),
                str(r.zero_dispatch),
                str(r.multi_dispatch),
                str(r.healed_doubles),
                str(r.wrong_persona),
                str(r.defaults),
                str(r.redelivered),
                p99,
                _checked(r, r.records),
                _checked(r, r.outcome_count(ANSWERED)),
                _checked(r, r.records_missing),
                _checked(r, r.records_extra),
                _checked(r, r.records_wrong),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]

    def line(cells: tuple[str, ...]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    separator = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), separator, *(line(row) for row in rows[1:])])


def row(result: FaultResult) -> dict[str, Any]:
    """One fault's figures; the record figures are null when its mesh kept no call history."""
    r = result

    def checked(value: int) -> int | None:
        return value if r.records_checked else None

    return {
        "fault": r.fault,
        "calls": r.calls,
        "zero_dispatch": r.zero_dispatch,
        "multi_dispatch": r.multi_dispatch,
        "healed_doubles": r.healed_doubles,
        "wrong_persona": r.wrong_persona,
        "default_persona": r.defaults,
        "redelivered": r.redelivered,
        "p99_to_dispatch_seconds": None if r.p99_seconds is None else round(r.p99_seconds, 3),
        "records": checked(r.records),
        "records_answered": checked(r.outcome_count(ANSWERED)),
        "records_no_agent": checked(r.outcome_count(NO_AGENT)),
        "records_abandoned": checked(r.outcome_count(ABANDONED)),
        "records_missing": checked(r.records_missing),
        "records_extra": checked(r.records_extra),
        "records_wrong_outcome": checked(r.records_wrong_outcome),
        "records_wrong_persona": checked(r.records_wrong_persona),
        "failed": r.failed,
        "seconds": round(r.seconds, 1),
    }


def format_json(results: Iterable[FaultResult]) -> str:
    return json.dumps([row(r) for r in results], indent=2)
