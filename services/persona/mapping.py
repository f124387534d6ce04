"""CRM/persona-file JSON → `Persona`. Accepts the original Friday handler's field
names in camelCase and snake_case, unwraps `{"data": {...}}`, and keeps every field
we do not model in `extras` so nothing the CRM sends is lost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from friday.persona.v1.persona_pb2 import GreetingMode, Persona
from services.common.versions import content_version

# Persona field -> accepted JSON keys, first match wins.
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "persona_id": ("persona_id", "personaId", "id"),
    "display_name": ("persona_name", "personaName", "display_name", "displayName", "name"),
    "personality": ("personality",),
    "conversation_structure": ("conversationStructure", "conversation_structure"),
    "welcome_message": ("welcome_message", "welcomeMessage"),
    "closing_message": ("closing_message", "closingMessage"),
    "language": ("language", "lang"),
    "version": ("version", "persona_version", "personaVersion"),
}
_VOICE_KEYS = ("voice",)
_VOICE_PROVIDER_KEYS = ("voice_provider", "voiceProvider", "tts_provider", "ttsProvider")
_VOICE_ID_KEYS = ("voice_id", "voiceId")
_VARIABLE_KEYS = ("prompt_variables", "promptVariables", "variables")
_GREETING_KEYS = ("greeting_mode", "greetingMode")
# A record without any of these cannot drive a conversation.
_SUBSTANCE = ("personality", "conversation_structure", "welcome_message")
# Deepest nesting of objects/arrays accepted in extra fields. Every JSON level costs
# protobuf 2-3 message levels (Value/Struct/ListValue) and parsers stop at 100, so a
# deeper record would serialise here and then fail to decode in the gateway, the
# dispatcher, the agent and our own Redis cache.
MAX_EXTRAS_DEPTH = 16


class MalformedPersona(ValueError):
    """The body is not a usable persona record."""


def unwrap(body: Any) -> Mapping[str, Any]:
    """The persona object inside a CRM body: the object itself or its `data`."""
    if isinstance(body, Mapping) and "data" in body and not any(k in body for k in ("personality", "persona_name")):
        body = body["data"]
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, Mapping):
        raise MalformedPersona(f"expected a JSON object, got {type(body).__name__}")
    return body


def persona_from_json(body: Any, *, persona_id: str = "") -> Persona:
    record = unwrap(body)
    persona = Persona()
    used: set[str] = set()
    for field, keys in _TEXT_FIELDS.items():
        key, value = _first(record, keys)
        if key is None or value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise MalformedPersona(f"field {key!r} must be text, got {type(value).__name__}")
        setattr(persona, field, str(value))
        used.add(key)
    if not persona.persona_id and persona_id:
        persona.persona_id = persona_id

    key, voice = _first(record, _VOICE_KEYS)
    if isinstance(voice, Mapping):
        used.add(key or "")
        _, provider = _first(voice, ("provider",))
        _, voice_id = _first(voice, _VOICE_ID_KEYS + ("id",))
        persona.voice.provider = str(provider or "")
        persona.voice.voice_id = str(voice_id or "")
    elif isinstance(voice, str) and voice:
        used.add(key or "")
        persona.voice.voice_id = voice
    for keys, attr in ((_VOICE_PROVIDER_KEYS, "provider"), (_VOICE_ID_KEYS, "voice_id")):
        key, value = _first(record, keys)
        if key is not None and value:
            used.add(key)
            setattr(persona.voice, attr, str(value))

    key, variables = _first(record, _VARIABLE_KEYS)
    if key is not None and variables is not None:
        if not isinstance(variables, Mapping):
            raise MalformedPersona(f"field {key!r} must be an object")
        used.add(key)
        for name, value in variables.items():
            persona.prompt_variables[str(name)] = "" if value is None else str(value)

    key, mode = _first(record, _GREETING_KEYS)
    if key is not None and mode:
        used.add(key)
        persona.greeting_mode = _greeting_mode(str(mode))

    if not any(getattr(persona, f) for f in _SUBSTANCE):
        raise MalformedPersona("record has none of personality, conversationStructure, welcome_message")

    extras = {k: v for k, v in record.items() if k not in used}
    if extras:
        if _depth(extras) > MAX_EXTRAS_DEPTH:
            raise MalformedPersona(f"extra fields nested deeper than {MAX_EXTRAS_DEPTH} levels")
        struct = struct_pb2.Struct()
        try:
            struct.update(extras)
        except (TypeError, ValueError, RecursionError) as exc:
            raise MalformedPersona(f"unrepresentable extra fields: {exc}") from exc
        persona.extras.CopyFrom(struct)
    if not persona.version:
        persona.version = content_version(persona)
    return persona


def _depth(value: Any) -> int:
    """Nesting depth of objects/arrays, iteratively (the value may be deeper than the stack)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_EXTRAS_DEPTH:
            return deepest  # enough to refuse it; do not walk the rest
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _first(record: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in record:
            return key, record[key]
    return None, None


def _greeting_mode(text: str) -> GreetingMode.ValueType:
    normalized = text.strip().lower().removeprefix("greeting_mode_")
    if normalized == "generated":
        return GreetingMode.GREETING_MODE_GENERATED
    if normalized == "spoken":
        return GreetingMode.GREETING_MODE_SPOKEN
    return GreetingMode.GREETING_MODE_UNSPECIFIED
