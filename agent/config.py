"""Agent configuration from the environment, read once at worker start.

LiveKit's own variables (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
LIVEKIT_LOG_LEVEL, …) are left to livekit-agents; only Friday's choices live here,
plus the check that the chosen speech stack can work with the credentials present
(`require_usable_stack`), so a worker that could only fail at a caller's first word
refuses to start instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services.common.env import ConfigError as ConfigError  # re-exported: the agent CLI's error
from services.common.env import Environment
from services.common.listen_address import LOOPBACK_HOST
from services.common.livekit_names import AGENT_NAME_ENV, DEFAULT_AGENT_NAME

STACK_INFERENCE = "inference"
STACK_OPENAI = "openai"
STACK_AZURE = "azure"
STACKS = (STACK_INFERENCE, STACK_OPENAI, STACK_AZURE)
STACK_ENV = "FRIDAY_SPEECH_STACK"
# FRIDAY_VAD: silero (bundled in livekit-local-inference) or none.
VAD_ON = ("silero", "on", "true", "1")
VAD_OFF = ("none", "off", "false", "0")

# The credentials each stack's clients read themselves (livekit-agents' inference
# module, the openai client); read here only to choose and check the stack.
OPENAI_KEY_ENV = "OPENAI_API_KEY"
AZURE_ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
AZURE_CREDENTIAL_ENV = ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN")
AZURE_API_VERSION_ENV = "OPENAI_API_VERSION"
LIVEKIT_URL_ENV = "LIVEKIT_URL"
# livekit-agents signs inference requests with these instead of the server's key pair when set.
INFERENCE_KEY_ENV = ("LIVEKIT_INFERENCE_API_KEY", "LIVEKIT_INFERENCE_API_SECRET")
CLOUD_HOST_SUFFIX = ".livekit.cloud"

# What each stack needs, as the start-up error and the README state it.
STACK_NEEDS = {
    STACK_INFERENCE: f"{LIVEKIT_URL_ENV} on LiveKit Cloud (wss://<project>{CLOUD_HOST_SUFFIX}), or "
    f"{' and '.join(INFERENCE_KEY_ENV)} of a LiveKit Cloud project",
    STACK_OPENAI: OPENAI_KEY_ENV,
    STACK_AZURE: f"{AZURE_ENDPOINT_ENV}, {AZURE_CREDENTIAL_ENV[0]} (or {AZURE_CREDENTIAL_ENV[1]}) "
    f"and {AZURE_API_VERSION_ENV}",
}


@dataclass(frozen=True)
class InferenceStackConfig:
    """LiveKit Inference: model strings resolved by LiveKit Cloud, billed to the project."""

    stt_model: str = "deepgram/nova-3"
    llm_model: str = "openai/gpt-4.1-mini"
    tts_model: str = "cartesia/sonic-3"
    tts_voice: str = ""  # empty: the TTS model's default voice
    known_voices: frozenset[str] | None = None  # None: accept any id for the TTS provider


@dataclass(frozen=True)
class OpenAIStackConfig:
    """OpenAI's own API via livekit-plugins-openai; the key (OPENAI_API_KEY) and an
    optional OPENAI_BASE_URL are read by the openai client itself."""

    llm_model: str = "gpt-4.1-mini"
    stt_model: str = "gpt-4o-mini-transcribe"
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str = "ash"


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
    openai: OpenAIStackConfig = OpenAIStackConfig()
    azure: AzureStackConfig = AzureStackConfig()
    language: str = ""  # default STT/TTS language when the persona has none
    vad: bool = True  # silero VAD bundled in livekit-local-inference (no download)
    # How long to wait for the caller's SIP participant before speaking anyway.
    sip_participant_timeout: float = 20.0
    # How long the caller may keep hearing ringing while the spoken greeting's first
    # audio is synthesised; past it the call is answered and the greeting follows.
    greeting_audio_wait: float = 2.0
    # Where livekit-agents serves the worker's health check (port 8081 in production).
    # livekit-agents binds every interface by default; loopback unless told otherwise,
    # like every Friday service (a cluster's kubelet probes the pod's address: the
    # manifests set AGENT_HEALTH_HOST).
    health_host: str = LOOPBACK_HOST
    # PersonaService to follow for persona changes during a call (WatchPersonas); None: the
    # persona stays what the job brought.
    persona_target: str | None = None
    persona_token: str | None = field(default=None, repr=False)

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
        openai = OpenAIStackConfig(
            llm_model=env.text("FRIDAY_OPENAI_LLM_MODEL", OpenAIStackConfig.llm_model),
            stt_model=env.text("FRIDAY_OPENAI_STT_MODEL", OpenAIStackConfig.stt_model),
            tts_model=env.text("FRIDAY_OPENAI_TTS_MODEL", OpenAIStackConfig.tts_model),
            tts_voice=voice or OpenAIStackConfig.tts_voice,
        )
        azure = AzureStackConfig(
            llm_deployment=env.text("AZURE_OPENAI_DEPLOYMENT", AzureStackConfig.llm_deployment),
            stt_deployment=env.text("AZURE_OPENAI_STT_DEPLOYMENT", AzureStackConfig.stt_deployment),
            tts_deployment=env.text("AZURE_OPENAI_TTS_DEPLOYMENT", AzureStackConfig.tts_deployment),
            tts_voice=voice or AzureStackConfig.tts_voice,
        )
        return cls(
            agent_name=env.text(AGENT_NAME_ENV, cls.agent_name),
            stack=env.choice(STACK_ENV, default_stack(env), STACKS),
            inference=inference,
            openai=openai,
            azure=azure,
            language=env.text("FRIDAY_LANGUAGE", cls.language),
            vad=env.choice("FRIDAY_VAD", "silero", VAD_ON + VAD_OFF) in VAD_ON,
            sip_participant_timeout=env.number("FRIDAY_SIP_WAIT_SECONDS", cls.sip_participant_timeout),
            greeting_audio_wait=env.number("FRIDAY_GREETING_AUDIO_WAIT_SECONDS", cls.greeting_audio_wait),
            health_host=env.text("AGENT_HEALTH_HOST", cls.health_host),
            persona_target=env.optional("FRIDAY_PERSONA_WATCH_TARGET"),
            persona_token=env.optional("PERSONA_TOKEN"),
        )


def default_stack(env: Environment) -> str:
    """The stack whose credentials are present: azure, then openai, then inference.

    A provider's credentials are set only to be used, while inference needs nothing
    but the LiveKit key pair every worker has, so it is what is left. Azure needs an
    endpoint *and* a credential: an endpoint alone would fail the first turn.
    """
    # Every name is read, not short-circuited, so a recording Mapping learns them all.
    azure_endpoint, azure_credential = env.optional(AZURE_ENDPOINT_ENV), env.optional(AZURE_CREDENTIAL_ENV)
    openai_key = env.optional(OPENAI_KEY_ENV)
    if azure_endpoint and azure_credential:
        return STACK_AZURE
    return STACK_OPENAI if openai_key else STACK_INFERENCE


def stack_problem(stack: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why `stack` cannot work with this environment, or None when it can."""
    env = Environment(environ)
    if stack == STACK_INFERENCE:
        if all(env.optional(name) for name in INFERENCE_KEY_ENV):
            return None
        url = env.optional(LIVEKIT_URL_ENV)
        if url is None:
            return f"LiveKit Inference is served only by LiveKit Cloud, and {LIVEKIT_URL_ENV} is not set"
        if not is_livekit_cloud(url):
            return (
                f"LiveKit Inference is served only by LiveKit Cloud, and {LIVEKIT_URL_ENV}={url} "
                f"is not a LiveKit Cloud URL (*{CLOUD_HOST_SUFFIX})"
            )
        return None
    if stack == STACK_OPENAI:
        return None if env.optional(OPENAI_KEY_ENV) else f"{OPENAI_KEY_ENV} is not set"
    missing = [AZURE_ENDPOINT_ENV] if not env.optional(AZURE_ENDPOINT_ENV) else []
    if not env.optional(AZURE_CREDENTIAL_ENV):
        missing.append(" or ".join(AZURE_CREDENTIAL_ENV))
    if not env.optional(AZURE_API_VERSION_ENV):
        missing.append(AZURE_API_VERSION_ENV)
    if not missing:
        return None
    listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    return f"{listed} {'is' if len(missing) == 1 else 'are'} not set"


def require_usable_stack(config: AgentConfig, environ: Mapping[str, str] | None = None) -> None:
    """Refuse, naming FRIDAY_SPEECH_STACK and what every stack needs, a stack that
    would fail at the first word of the first call."""
    problem = stack_problem(config.stack, environ)
    if problem is None:
        return
    env = Environment(environ)
    chosen = (
        f"{STACK_ENV}={config.stack}"
        if env.optional(STACK_ENV)
        else f"{STACK_ENV} is not set, so the stack is {config.stack} (chosen by the credentials present)"
    )
    needs = "\n".join(f"  {stack}: {STACK_NEEDS[stack]}" for stack in STACKS)
    raise ConfigError(
        f"{chosen}, which cannot work here: {problem}.\nSet {STACK_ENV} to a stack whose variables are set:\n{needs}"
    )


def is_livekit_cloud(url: str) -> bool:
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    return host.endswith(CLOUD_HOST_SUFFIX)


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
