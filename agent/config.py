"""Agent configuration from the environment, read once at worker start.

LiveKit's own variables (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
LIVEKIT_LOG_LEVEL, …) are left to livekit-agents; only Friday's choices live here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_AGENT_NAME = "friday-ai-agent"

STACK_INFERENCE = "inference"
STACK_AZURE = "azure"
STACKS = (STACK_INFERENCE, STACK_AZURE)


class ConfigError(ValueError):
    pass


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
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        env = os.environ if env is None else env
        stack = (env.get("FRIDAY_SPEECH_STACK") or "").strip().lower() or _auto_stack(env)
        if stack not in STACKS:
            raise ConfigError(f"FRIDAY_SPEECH_STACK must be one of {', '.join(STACKS)}; got {stack!r}")
        voices = _csv(env.get("FRIDAY_TTS_VOICES", ""))
        inference = InferenceStackConfig(
            stt_model=env.get("FRIDAY_STT_MODEL") or InferenceStackConfig.stt_model,
            llm_model=env.get("FRIDAY_LLM_MODEL") or InferenceStackConfig.llm_model,
            tts_model=env.get("FRIDAY_TTS_MODEL") or InferenceStackConfig.tts_model,
            tts_voice=env.get("FRIDAY_TTS_VOICE") or "",
            known_voices=frozenset(voices) if voices else None,
        )
        azure = AzureStackConfig(
            llm_deployment=env.get("AZURE_OPENAI_DEPLOYMENT") or AzureStackConfig.llm_deployment,
            stt_deployment=env.get("AZURE_OPENAI_STT_DEPLOYMENT") or AzureStackConfig.stt_deployment,
            tts_deployment=env.get("AZURE_OPENAI_TTS_DEPLOYMENT") or AzureStackConfig.tts_deployment,
            tts_voice=env.get("FRIDAY_TTS_VOICE") or AzureStackConfig.tts_voice,
        )
        return cls(
            agent_name=(env.get("AGENT_TO_DISPATCH") or "").strip() or DEFAULT_AGENT_NAME,
            stack=stack,
            inference=inference,
            azure=azure,
            language=(env.get("FRIDAY_LANGUAGE") or "").strip(),
            vad=(env.get("FRIDAY_VAD") or "silero").strip().lower() not in ("none", "off", "0", "false"),
            sip_participant_timeout=_float(env, "FRIDAY_SIP_WAIT_SECONDS", 20.0),
        )


def _auto_stack(env: Mapping[str, str]) -> str:
    # Azure only when it can actually authenticate: an endpoint alone would fail the first turn.
    credential = env.get("AZURE_OPENAI_API_KEY") or env.get("AZURE_OPENAI_AD_TOKEN")
    return STACK_AZURE if env.get("AZURE_OPENAI_ENDPOINT") and credential else STACK_INFERENCE


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number of seconds; got {raw!r}") from exc
