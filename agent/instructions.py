"""LLM instructions from a persona.

Order (documented in the README): `personality` first — who the agent is, its
tone and rules — then `conversation_structure` under a heading, because models
follow a procedure more reliably once they know the role it belongs to. Either
part alone is used as is. A persona with neither gets the default persona's
instructions, so the model is never started without a role.
"""

from __future__ import annotations

from services.common.default_persona import default_persona

CONVERSATION_STRUCTURE_HEADING = "Conversation structure:"


def compose_instructions(personality: str, conversation_structure: str) -> str:
    personality = personality.strip()
    structure = conversation_structure.strip()
    parts: list[str] = []
    if personality:
        parts.append(personality)
    if structure:
        parts.append(f"{CONVERSATION_STRUCTURE_HEADING}\n{structure}")
    if not parts:
        fallback = default_persona()
        return compose_instructions(fallback.personality, fallback.conversation_structure)
    return "\n\n".join(parts)
