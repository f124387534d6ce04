"""The numbers the benchmark calls and the personas behind them: one file for the
CRM stand-in (keyed by the CRM path segment, national digits, PersonaService's
default CRM number format) and one for the floor (keyed by the dialed E.164 number)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

WARM_NUMBER = "+14155551000"
# A number whose CRM answer is a campaign (6p's third leg): the same GetPersona, plus
# the per-call selection after the cache. Only the mesh's CRM has it; the floor has
# no campaigns.
CAMPAIGN_NUMBER = "+14155554000"
CAMPAIGN_CALLER = "+14155550199"


def _persona_body(i: int) -> dict[str, object]:
    """A persona of realistic size (~1.5 KB of job metadata, like the shipped examples)."""
    return {
        "persona_id": f"bench-{i}",
        "persona_name": f"Bench persona {i}",
        "personality": (
            "You are Maya, the front desk of Acme Dental in San Francisco. You book, move and cancel "
            "appointments, answer questions about opening hours, insurance and parking, and take messages "
            "for the dentists. Speak in short, natural sentences suitable for a phone call. Never give "
            "medical advice; offer a callback from a dentist instead."
        ),
        "conversationStructure": (
            "1. Greet the caller.\n2. Ask for their name and date of birth.\n3. Book, move or cancel the "
            "appointment they ask for.\n4. Confirm date and time, then say goodbye."
        ),
        "welcome_message": "Thanks for calling Acme Dental, this is Maya. How can I help?",
        "closing_message": "See you soon at Acme Dental. Bye!",
        "language": "en-US",
        "voice": {"provider": "elevenlabs", "voice_id": "maya"},
        "prompt_variables": {"business_hours": "Monday to Friday, 8am to 6pm", "city": "San Francisco"},
    }


def _campaign_body() -> dict[str, object]:
    """Every rule evaluated on each call: hours (open all week, so the split decides),
    a caller match that does not match, then the sticky split."""
    always = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return {
        "campaign": {
            "id": "bench-campaign",
            "default_variant": "a",
            "schedule": {"time_zone": "America/Los_Angeles", "weekly": always, "closed_variant": "a"},
            "variants": [
                {"id": "in", "match": {"regions": ["IN"], "prefixes": ["+91"]}, "persona": _persona_body(900)},
                {"id": "a", "weight": 50, "persona": _persona_body(901)},
                {"id": "b", "weight": 50, "persona": _persona_body(902)},
            ],
        }
    }


def crm_segment(e164: str) -> str:
    return phonenumbers.national_significant_number(phonenumbers.parse(e164))


@dataclass(frozen=True)
class BenchNumbers:
    warm: str
    burst: str
    cold: list[str]

    @classmethod
    def make(cls, cold_count: int) -> BenchNumbers:
        return cls(
            warm=WARM_NUMBER,
            burst="+14155552000",
            cold=[f"+1415555{3000 + i:04d}" for i in range(cold_count)],
        )

    def all(self) -> list[str]:
        return [self.warm, self.burst, *self.cold]

    def write(self, directory: Path) -> tuple[Path, Path]:
        """(CRM stand-in personas file, floor personas file)."""
        bodies = {number: _persona_body(i) for i, number in enumerate(self.all())}
        crm_file = directory / "crm-personas.json"
        crm_bodies = {crm_segment(n): body for n, body in bodies.items()}
        crm_bodies[crm_segment(CAMPAIGN_NUMBER)] = _campaign_body()
        crm_file.write_text(json.dumps(crm_bodies))
        floor_file = directory / "floor-personas.json"
        floor_file.write_text(json.dumps(bodies))
        return crm_file, floor_file
