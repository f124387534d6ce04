"""The fault matrix as a Markdown table (what `friday chaos` prints and the README quotes)."""

from __future__ import annotations

from collections.abc import Iterable

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
)


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
