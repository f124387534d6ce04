"""Job metadata as the dispatcher writes it (through the shared encoder)."""

from __future__ import annotations

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.persona_pb2 import GreetingMode, Persona, PersonaSource, Voice
from services.common.job_metadata import encode

DIALED = "+14155550100"
CALLER = "+14155550199"


def acme_persona(**overrides: object) -> Persona:
    persona = Persona(
        persona_id="crm-42",
        display_name="Maya from Acme Dental",
        personality="You are {{persona_name}}, the receptionist of {{business}}. Be warm and brief.",
        conversation_structure="1. Ask for the patient's name.\n2. Offer a slot on {{open_day}}.",
        welcome_message="Hi, this is {{persona_name}} at {{business}}. You called {{dialed_number}}.",
        closing_message="Thanks for calling {{business}}, goodbye!",
        voice=Voice(provider="cartesia", voice_id="maya-voice"),
        language="en-US",
        prompt_variables={"business": "Acme Dental", "open_day": "Tuesday"},
        greeting_mode=GreetingMode.GREETING_MODE_SPOKEN,
    )
    for field, value in overrides.items():
        if field == "voice":
            persona.voice.CopyFrom(value)  # type: ignore[arg-type]
        elif field == "prompt_variables":
            persona.prompt_variables.clear()
            persona.prompt_variables.update(value)  # type: ignore[call-overload]
        else:
            setattr(persona, field, value)
    return persona


def job_metadata(persona: Persona | None = None, **call: str) -> str:
    facts = {"dialed_number": DIALED, "caller_number": CALLER, "sip_call_id": "SCL_1", "room": "call-room"}
    facts.update(call)
    return encode(
        AgentJobMetadata(
            persona=persona or acme_persona(),
            persona_source=PersonaSource.PERSONA_SOURCE_CRM,
            call=CallFacts(**facts),
            trace_id="EV_trace_1",
        )
    )
