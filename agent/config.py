"""Agent configuration from the environment, read once at worker start.

LiveKit's own variables (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
LIVEKIT_LOG_LEVEL, …) are left to livekit-agents; only Friday's choices live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.env import ConfigError as ConfigError  # re-exported: the agent CLI's error
from services.common.env import Environment
from services.common.livekit_names import AGENT_NAME_ENV, DEFAULT_AGENT_NAME

STACK_INFERENCE = "inference"
STACK_AZURE = "azure"
STACKS = (STACK_INFERENCE, STACK_AZURE)
# FRIDAY_VAD: silero (bundled in livekit-local-inference) or none.
VAD_ON = ("silero", "on", "true", "1")
VAD_OFF = ("none", "off", "false", "0")


@dataclass(frozen=True)
class InferenceStackConfig:
    """LiveKit Inference: model strings resolved by LiveKit Cloud, billed to the project."""

    stt_model: str = "deepgram/nova-3"
    llm_model: str = "openai/gpt-4.1-mini"
    tts_model: str = "cartesia/sonic-3"
    tts_voice: str = ""  # empty: the TTS model's default voice
    known_voices: frozenset[str] | None = None  # None: accept any id for the TTS provider


@dataclass(frozen=True)
class AzureStackConfig:
    """Azure OpenAI via livekit-plugins-openai; endpoint/key/api version are read by
    the openai client itself (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY,
    OPENAI_API_VERSION)."""

    llm_deployment: str = "gpt-4o-mini"
    stt_deployment: str = "gpt-4o-mini-transcribe"
    tts_deployment: str = "gpt-4o-mini-tts"
    tts_voice: str = "ash"


@dataclass(frozen=True)
class AgentConfig:
    agent_name: str = DEFAULT_AGENT_NAME
    stack: str = STACK_INFERENCE
    inference: InferenceStackConfig = InferenceStackConfig()
    azure: AzureStackConfig = AzureStackConfig()
    language: str = ""  # default STT/TTS language when the persona has none
    vad: bool = True  # silero VAD bundled in livekit-local-inference (no download)
    # How long to wait for the caller's SIP participant before speaking anyway.
    sip_participant_timeout: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AgentConfig:
        env = Environment(environ)
        voices = _csv(env.text("FRIDAY_TTS_VOICES", ""))
        voice = env.optional("FRIDAY_TTS_VOICE")
        inference = InferenceStackConfig(
            stt_model=env.text("FRIDAY_STT_MODEL", InferenceStackConfig.stt_model),
            llm_model=env.text("FRIDAY_LLM_MODEL", InferenceStackConfig.llm_model),
            tts_model=env.text("FRIDAY_TTS_MODEL", InferenceStackConfig.tts_model),
            tts_voice=voice or InferenceStackConfig.tts_voice,
            known_voices=frozenset(voices) if voices else None,
        )
        azure = AzureStackConfig(
            llm_deployment=env.text("AZURE_OPENAI_DEPLOYMENT", AzureStackConfig.llm_deployment),
            stt_deployment=env.text("AZURE_OPENAI_STT_DEPLOYMENT", AzureStackConfig.stt_deployment),
            tts_deployment=env.text("AZURE_OPENAI_TTS_DEPLOYMENT", AzureStackConfig.tts_deployment),
            tts_voice=voice or AzureStackConfig.tts_voice,
        )
        return cls(
            agent_name=env.text(AGENT_NAME_ENV, cls.agent_name),
            stack=env.choice("FRIDAY_SPEECH_STACK", _auto_stack(env), STACKS),
            inference=inference,
            azure=azure,
            language=env.text("FRIDAY_LANGUAGE", cls.language),
            vad=env.choice("FRIDAY_VAD", "silero", VAD_ON + VAD_OFF) in VAD_ON,
            sip_participant_timeout=env.number("FRIDAY_SIP_WAIT_SECONDS", cls.sip_participant_timeout),
        )


def _auto_stack(env: Environment) -> str:
    # Azure only when it can actually authenticate: an endpoint alone would fail the first turn.
    credential = env.optional(("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN"))
    return STACK_AZURE if env.optional("AZURE_OPENAI_ENDPOINT") and credential else STACK_INFERENCE


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
