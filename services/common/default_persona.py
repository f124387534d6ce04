"""The persona used when nothing better exists: no CRM record, the CRM and every
cache are down, the number is hidden, or the job metadata is unusable. It is
deliberately generic — a caller should never hear another business's name."""

from __future__ import annotations

from friday.persona.v1.persona_pb2 import GreetingMode, Persona
from services.common.versions import content_version

DEFAULT_PERSONA_ID = "default"


def default_persona() -> Persona:
    """A fresh copy each time, so no caller can mutate the shared default."""
    persona = Persona(
        persona_id=DEFAULT_PERSONA_ID,
        display_name="Friday",
        personality=(
            "You are Friday, a friendly and concise phone assistant. Speak in short, natural "
            "sentences suitable for a voice call. Never invent facts about the business; if you "
            "do not know something, offer to take a message."
        ),
        conversation_structure=(
            "1. Greet the caller and ask how you can help.\n"
            "2. Understand the request and answer it or take a message (name, number, reason).\n"
            "3. Confirm what will happen next, say goodbye, and end the call."
        ),
        welcome_message="Hello, thanks for calling. This is Friday. How can I help you today?",
        closing_message="Thank you for calling. Goodbye!",
        greeting_mode=GreetingMode.GREETING_MODE_SPOKEN,
    )
    persona.version = content_version(persona)
    return persona
