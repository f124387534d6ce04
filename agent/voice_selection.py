"""Which TTS voice and language a persona gets on the configured speech stack.

A persona names a voice as (provider, voice_id). The stack accepts it when the
provider is empty or matches the stack's TTS provider and, if the stack knows
its voice list, the id is on it. Anything else falls back to the stack's default
voice with a warning: a wrong voice id would make the TTS provider fail the first
utterance, and the caller would hear silence instead of a slightly different voice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from friday.persona.v1.persona_pb2 import Persona

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceCatalog:
    """What the configured TTS can speak with."""

    provider: str
    default_voice: str = ""  # empty: the TTS model's own default
    # None: any id is accepted for `provider` (the stack cannot enumerate them).
    known_voices: frozenset[str] | None = None
    default_language: str = ""  # empty: the STT/TTS models' own default
    # Other names a persona may give the same provider ("azure" for Azure OpenAI TTS).
    aliases: frozenset[str] = frozenset()

    def serves(self, provider: str) -> bool:
        return not provider or provider.lower() in {self.provider.lower(), *(a.lower() for a in self.aliases)}

    def accepts(self, provider: str, voice_id: str) -> bool:
        return self.serves(provider) and (self.known_voices is None or voice_id in self.known_voices)


@dataclass(frozen=True)
class VoiceChoice:
    voice: str  # empty: the stack default
    language: str  # empty: the stack default
    fallback_reason: str = ""  # why the persona's voice was not used


def choose_voice(persona: Persona, catalog: VoiceCatalog) -> VoiceChoice:
    language = persona.language.strip() or catalog.default_language
    requested = persona.voice if persona.HasField("voice") else None
    if requested is None or not requested.voice_id.strip():
        return VoiceChoice(voice=catalog.default_voice, language=language)
    provider, voice_id = requested.provider.strip(), requested.voice_id.strip()
    if catalog.accepts(provider, voice_id):
        return VoiceChoice(voice=voice_id, language=language)
    reason = (
        f"voice provider {provider!r} is not the stack's {catalog.provider!r}"
        if not catalog.serves(provider)
        else f"voice {voice_id!r} is not one of the {catalog.provider} voices this stack knows"
    )
    logger.warning(
        "persona voice unavailable, using the stack default: %s",
        reason,
        extra={"persona_id": persona.persona_id, "voice_provider": provider, "voice_id": voice_id},
    )
    return VoiceChoice(voice=catalog.default_voice, language=language, fallback_reason=reason)
