"""`friday persona check`: what PersonaService would make of a persona file or a
CRM answer, without a running service — every entry parsed with the same code
the service uses, every problem reported (not just the first)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from friday.persona.v1.campaign_pb2 import Campaign
from services.persona.answers import answer_from_json
from services.persona.mapping import MalformedPersona, persona_from_json
from services.persona.numbers import InvalidPhoneNumber, parse_dialed_number
from services.persona.sources import SourceAnswer


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)  # one per usable entry
    problems: list[str] = field(default_factory=list)  # one per unusable entry


def check_document(document: Any, *, default_region: str, origin: str) -> CheckReport:
    report = CheckReport()
    if isinstance(document, Mapping) and "personas" in document:
        personas = document["personas"]
        if not isinstance(personas, Mapping):
            report.problems.append(f"{origin}: 'personas' must be an object of number → persona or campaign")
            return report
        if "default" in document:
            _check_entry(report, origin, "default", document["default"], default_only=True)
        for key, body in personas.items():
            try:
                number = parse_dialed_number(str(key), default_region).e164
            except InvalidPhoneNumber as exc:
                report.problems.append(f"{origin}: {key!r}: {exc}")
                continue
            _check_entry(report, origin, number, body)
        if not report.lines and not report.problems:
            report.problems.append(f"{origin}: no personas")
        return report
    _check_entry(report, origin, "(CRM answer)", document)
    return report


def _check_entry(report: CheckReport, origin: str, key: str, body: Any, *, default_only: bool = False) -> None:
    try:
        answer: SourceAnswer = persona_from_json(body, persona_id=key) if default_only else answer_from_json(body)
    except (MalformedPersona, ValueError, RecursionError) as exc:
        report.problems.append(f"{origin}: {key}: {exc}")
        return
    report.lines.append(f"{key}  {describe(answer)}")


def describe(answer: SourceAnswer) -> str:
    if not isinstance(answer, Campaign):
        return f"persona {answer.persona_id or '-'}  version {answer.version}"
    personas = sum(1 for v in answer.variants if v.HasField("persona"))
    rules = []
    if answer.HasField("schedule"):
        rules.append(f"hours in {answer.schedule.time_zone} (closed: {answer.schedule.closed_variant_id})")
    if any(v.HasField("caller_match") for v in answer.variants):
        rules.append("caller match")
    if any(v.weight for v in answer.variants):
        split = ", ".join(f"{v.variant_id} {v.weight}" for v in answer.variants if v.weight)
        rules.append(f"split {split}")
    rules.append(f"default {answer.default_variant_id or '(the default persona)'}")
    return (
        f"campaign {answer.campaign_id}  version {answer.version}  {len(answer.variants)} variants"
        f" ({personas} personas, {len(answer.variants) - personas} actions)  rules: {'; '.join(rules)}"
    )
