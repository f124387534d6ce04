"""`{{name}}` placeholders in persona texts.

Values come from the persona's own `prompt_variables` plus the call facts
(`caller_number`, `dialed_number`, `persona_name`). Call facts win over a
persona variable of the same name: they are what is true for *this* call.
A call fact is substituted only in its real shape (services.common.call_facts: a
number is digits with an optional `+`), so a caller cannot write into the persona's
prose through it; a fact that is absent, withheld or refused substitutes as empty
text, as a hidden number always has.
An unknown placeholder is left exactly as written — a visible `{{slot}}` in a
transcript is easier to diagnose than a silently empty sentence — and is
logged once per renderer, not once per text, so a persona with the same typo in
three fields does not flood the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from friday.agent.v1.agent_job_metadata_pb2 import CallFacts
from friday.persona.v1.persona_pb2 import Persona
from services.common import call_facts

logger = logging.getLogger(__name__)

# Names are identifiers; optional spaces inside the braces (`{{ name }}`) are tolerated
# because CRM editors add them.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


def call_variables(persona: Persona, call: CallFacts) -> dict[str, str]:
    """The variables every persona can use, whatever its CRM record says."""
    return {
        "caller_number": _shaped(call_facts.CALLER_NUMBER, call.caller_number),
        "dialed_number": _shaped(call_facts.DIALED_NUMBER, call.dialed_number),
        "persona_name": persona.display_name,
    }


def _shaped(fact: str, value: str) -> str:
    # The job setup already dropped malformed facts; checked again at the last step
    # before the prompt, so no other path to these texts can skip it.
    return value if call_facts.accepted(fact, value) else ""


def variables_for(persona: Persona, call: CallFacts) -> dict[str, str]:
    values = dict(persona.prompt_variables)
    values.update(call_variables(persona, call))
    return values


class PromptRenderer:
    """Substitutes placeholders; remembers which unknown names it already logged."""

    def __init__(self, values: Mapping[str, str], *, log_context: Mapping[str, str] | None = None) -> None:
        self._values = dict(values)
        self._log_context = dict(log_context or {})
        self.unknown: set[str] = set()

    def render(self, text: str) -> str:
        if "{{" not in text:
            return text
        return PLACEHOLDER.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name in self._values:
            return self._values[name]
        if name not in self.unknown:
            self.unknown.add(name)
            logger.warning(
                "unknown prompt placeholder {{%s}} left as written",
                name,
                extra={"placeholder": name, **self._log_context},
            )
        return match.group(0)
