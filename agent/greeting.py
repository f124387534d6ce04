"""How the first turn is produced.

SPOKEN (and UNSPECIFIED, the proto's documented default): the welcome message is
said verbatim with `session.say`, so the caller hears exactly what the business
wrote. GENERATED: the welcome message is an instruction for `generate_reply`,
for personas that want a greeting adapted to the call. An empty welcome message
can only be generated: there is nothing to say verbatim.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from friday.persona.v1.persona_pb2 import GreetingMode

GENERIC_GREETING_INSTRUCTION = "Greet the caller briefly and ask how you can help."


class GreetingKind(enum.Enum):
    SPOKEN = "spoken"
    GENERATED = "generated"


@dataclass(frozen=True)
class Greeting:
    kind: GreetingKind
    # The exact words for SPOKEN; the instruction to the LLM for GENERATED.
    text: str


def plan_greeting(mode: GreetingMode.ValueType, welcome_message: str) -> Greeting:
    welcome = welcome_message.strip()
    if not welcome:
        return Greeting(GreetingKind.GENERATED, GENERIC_GREETING_INSTRUCTION)
    if mode == GreetingMode.GREETING_MODE_GENERATED:
        return Greeting(GreetingKind.GENERATED, welcome)
    return Greeting(GreetingKind.SPOKEN, welcome)
