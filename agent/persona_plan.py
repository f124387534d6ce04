"""Everything the agent does with a persona, decided before the first word.

`plan_persona` is pure: a JobSetup and the stack's voice catalogue in, a frozen
PersonaPlan out. The live session only executes the plan (persona_agent.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.greeting import Greeting, GreetingKind, plan_greeting
from agent.instructions import compose_instructions, with_call_facts
from agent.job_setup import JobSetup
from agent.prompt_variables import PromptRenderer, variables_for
from agent.voice_selection import VoiceCatalog, VoiceChoice, choose_voice
from friday.agent.v1.agent_job_metadata_pb2 import CallFacts

# Said when a persona has no closing message: hanging up in silence sounds like a dropped call.
DEFAULT_CLOSING_MESSAGE = "Thank you for calling. Goodbye!"


@dataclass(frozen=True)
class PersonaPlan:
    persona_id: str
    persona_name: str
    source: str  # PersonaSource enum name, as logs and transcripts show it
    trace_id: str
    call: CallFacts
    instructions: str
    greeting: Greeting
    closing_message: str
    voice: VoiceChoice
    fallback_reason: str  # non-empty when the default persona replaced unusable metadata
    unknown_placeholders: frozenset[str]
    persona_version: str = ""

    def applied_event(self) -> dict[str, str]:
        """The `persona_applied` record: what a transcript reader needs to know who spoke."""
        return {
            "event": "persona_applied",
            "persona_id": self.persona_id,
            "persona_name": self.persona_name,
            "persona_source": self.source,
            "trace_id": self.trace_id,
            "dialed_number": self.call.dialed_number,
            "caller_number": self.call.caller_number,
            "sip_call_id": self.call.sip_call_id,
            "room": self.call.room,
            "greeting_mode": self.greeting.kind.value,
            "voice": self.voice.voice,
            "language": self.voice.language,
            "fallback_reason": self.fallback_reason,
        }


def plan_persona(setup: JobSetup, catalog: VoiceCatalog) -> PersonaPlan:
    persona, call = setup.persona, setup.call
    renderer = PromptRenderer(
        variables_for(persona, call),
        log_context={"persona_id": persona.persona_id, "trace_id": setup.trace_id},
    )
    # Facts appended after rendering: a `{{...}}` in a fact's value is never expanded.
    instructions = with_call_facts(
        renderer.render(compose_instructions(persona.personality, persona.conversation_structure)), call
    )
    greeting = plan_greeting(persona.greeting_mode, persona.welcome_message)
    greeting = Greeting(greeting.kind, renderer.render(greeting.text))
    closing = renderer.render(persona.closing_message.strip() or DEFAULT_CLOSING_MESSAGE)
    return PersonaPlan(
        persona_id=persona.persona_id,
        persona_name=persona.display_name,
        source=setup.source_name,
        trace_id=setup.trace_id,
        call=call,
        instructions=instructions,
        greeting=greeting,
        closing_message=closing,
        voice=choose_voice(persona, catalog),
        fallback_reason=setup.fallback_reason,
        unknown_placeholders=frozenset(renderer.unknown),
        persona_version=persona.version,
    )


__all__ = ["GreetingKind", "PersonaPlan", "plan_persona"]
