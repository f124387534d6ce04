"""STT, LLM, TTS and VAD for one call, built from AgentConfig and the persona's
voice choice.

Three stacks (the default is chosen by the credentials present, agent/config.py):
- `inference`: LiveKit Inference model strings — needs nothing but the LiveKit
  project credentials the worker already has, but only LiveKit Cloud serves it
  (docs/architecture.md, "Agents").
- `openai`: OpenAI's own STT, LLM and TTS through livekit-plugins-openai, with
  OPENAI_API_KEY: works wherever LiveKit runs, self-hosted included.
- `azure`: Azure OpenAI through the same plugin (`with_azure`), as the original
  Friday agent used.
Provider SDKs are imported inside the builders so that importing this module (and
planning a persona) never loads a plugin or a model. VAD is silero from
livekit-local-inference, whose weights ship inside the wheel: nothing is downloaded.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from agent.config import STACK_AZURE, STACK_OPENAI, AgentConfig
from agent.voice_selection import VoiceCatalog, VoiceChoice


@dataclass
class SpeechStack:
    stt: Any
    llm: Any
    tts: Any
    vad: Any  # None: no VAD (text-only sessions)


def voice_catalog(config: AgentConfig) -> VoiceCatalog:
    if config.stack in (STACK_OPENAI, STACK_AZURE):
        # Azure OpenAI serves OpenAI's own TTS voices.
        default_voice = config.openai.tts_voice if config.stack == STACK_OPENAI else config.azure.tts_voice
        return VoiceCatalog(
            provider="openai",
            default_voice=default_voice,
            known_voices=_openai_voices(),
            default_language=config.language,
            aliases=frozenset({"azure", "azure-openai"}),
        )
    model, _, model_voice = config.inference.tts_model.partition(":")
    return VoiceCatalog(
        provider=model.split("/", 1)[0],
        default_voice=config.inference.tts_voice or model_voice,
        known_voices=config.inference.known_voices,
        default_language=config.language,
    )


def build_speech_stack(config: AgentConfig, choice: VoiceChoice) -> SpeechStack:
    vad = _silero_vad() if config.vad else None
    if config.stack == STACK_OPENAI:
        return _openai_stack(config, choice, vad)
    if config.stack == STACK_AZURE:
        return _azure_stack(config, choice, vad)
    return _inference_stack(config, choice, vad)


def _inference_stack(config: AgentConfig, choice: VoiceChoice, vad: Any) -> SpeechStack:
    from livekit.agents import inference

    language = _given(choice.language)
    model = config.inference.tts_model.partition(":")[0]
    return SpeechStack(
        stt=inference.STT(config.inference.stt_model, language=language),
        llm=inference.LLM(config.inference.llm_model),
        tts=inference.TTS(model, voice=_given(choice.voice), language=language),
        vad=vad,
    )


def _openai_stack(config: AgentConfig, choice: VoiceChoice, vad: Any) -> SpeechStack:
    from livekit.plugins import openai

    models = config.openai
    return SpeechStack(
        stt=openai.STT(model=models.stt_model, language=_whisper_language(choice.language)),
        llm=openai.LLM(model=models.llm_model),
        tts=openai.TTS(model=models.tts_model, voice=choice.voice or models.tts_voice),
        vad=vad,
    )


def _azure_stack(config: AgentConfig, choice: VoiceChoice, vad: Any) -> SpeechStack:
    from livekit.plugins import openai

    azure = config.azure
    return SpeechStack(
        stt=openai.STT.with_azure(
            model=azure.stt_deployment,
            azure_deployment=azure.stt_deployment,
            language=_whisper_language(choice.language),
        ),
        llm=openai.LLM.with_azure(model=azure.llm_deployment, azure_deployment=azure.llm_deployment),
        tts=openai.TTS.with_azure(
            model=azure.tts_deployment, azure_deployment=azure.tts_deployment, voice=choice.voice or azure.tts_voice
        ),
        vad=vad,
    )


def _whisper_language(language: str) -> str:
    # OpenAI's transcription models take ISO-639-1 ("en"), not a BCP-47 region tag.
    return language.split("-", 1)[0] if language else "en"


def _silero_vad() -> Any:
    from livekit.agents import inference

    return inference.VAD(model="silero")


def _openai_voices() -> frozenset[str]:
    try:
        from livekit.plugins.openai.models import TTSVoices
    except ImportError:
        return frozenset()
    return frozenset(typing.get_args(TTSVoices))


def _given(value: str) -> Any:
    from livekit.agents import NOT_GIVEN

    return value if value else NOT_GIVEN
