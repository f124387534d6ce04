"""The persona-file source (no CRM configured): a JSON file

    {"default": {...persona...}, "personas": {"+918655701159": {...persona...}, ...}}

using the same field names as the CRM. Keys may be in any accepted number format;
they are normalised to E.164 on load. The example file in this package is the
embedded default when neither PERSONA_API_BASE nor PERSONA_FILE is set."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf.message import Message

from friday.persona.v1.persona_pb2 import Persona
from services.persona.answers import answer_from_json
from services.persona.mapping import persona_from_json
from services.persona.numbers import DialedNumber, parse_dialed_number
from services.persona.sources import SourceAnswer

EXAMPLE_FILE_NAME = "personas.example.json"
_Message = TypeVar("_Message", bound=Message)


class PersonaFileError(ValueError):
    pass


class PersonaFileSource:
    cacheable = False

    def __init__(self, document: Any, *, default_region: str, origin: str = "<memory>") -> None:
        if not isinstance(document, dict) or not isinstance(document.get("personas", {}), dict):
            raise PersonaFileError(f"{origin}: expected {{'default': {{...}}, 'personas': {{number: {{...}}}}}}")
        self.origin = origin
        self._answers: dict[str, SourceAnswer] = {}
        for key, body in document.get("personas", {}).items():
            try:
                number = parse_dialed_number(str(key), default_region)
                self._answers[number.e164] = answer_from_json(body, persona_id=number.e164)
            except ValueError as exc:
                raise PersonaFileError(f"{origin}: persona {key!r}: {exc}") from exc
        self._default = persona_from_json(document["default"], persona_id="default") if "default" in document else None

    @classmethod
    def from_path(cls, path: str | Path, *, default_region: str) -> PersonaFileSource:
        text = Path(path).read_text(encoding="utf-8")
        return cls(json.loads(text), default_region=default_region, origin=str(path))

    @classmethod
    def example(cls, *, default_region: str) -> PersonaFileSource:
        text = resources.files("services.persona").joinpath(EXAMPLE_FILE_NAME).read_text(encoding="utf-8")
        return cls(json.loads(text), default_region=default_region, origin=f"services.persona/{EXAMPLE_FILE_NAME}")

    @property
    def numbers(self) -> list[str]:
        return sorted(self._answers)

    def default_persona(self) -> Persona | None:
        return _copy(self._default) if self._default is not None else None

    async def fetch(self, number: DialedNumber, deadline: float) -> SourceAnswer | None:
        # The file's own message, as a cache hands out its entry: answers are read, never
        # written, so a copy per call bought nothing, and the same object lets GetPersona
        # reuse its response template.
        return self._answers.get(number.e164)

    async def probe(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def _copy(message: _Message) -> _Message:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone
