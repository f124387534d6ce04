"""AgentConfig from the environment, and the start-up check of the speech stack."""

from __future__ import annotations

import pytest

from agent.config import (
    DEFAULT_AGENT_NAME,
    STACK_AZURE,
    STACK_INFERENCE,
    STACK_OPENAI,
    STACKS,
    AgentConfig,
    ConfigError,
    is_livekit_cloud,
    require_usable_stack,
    stack_problem,
)
from agent.speech_stack import voice_catalog

AZURE = {"AZURE_OPENAI_ENDPOINT": "https://x", "AZURE_OPENAI_API_KEY": "k", "OPENAI_API_VERSION": "2024-10-21"}
CLOUD_URL = "wss://friday-abc123.livekit.cloud"


def test_defaults() -> None:
    config = AgentConfig.from_env({})
    assert config.agent_name == DEFAULT_AGENT_NAME == "friday-ai-agent"
    assert config.stack == STACK_INFERENCE
    assert config.vad is True
    assert voice_catalog(config).provider == "cartesia"


def test_agent_name_and_inference_models_from_env() -> None:
    config = AgentConfig.from_env(
        {
            "AGENT_TO_DISPATCH": " acme-agent ",
            "FRIDAY_TTS_MODEL": "deepgram/aura-2:asteria",
            "FRIDAY_TTS_VOICES": "asteria, luna",
            "FRIDAY_LANGUAGE": "en-US",
            "FRIDAY_VAD": "none",
        }
    )
    assert config.agent_name == "acme-agent"
    assert config.vad is False
    catalog = voice_catalog(config)
    assert (catalog.provider, catalog.default_voice, catalog.default_language) == ("deepgram", "asteria", "en-US")
    assert catalog.known_voices == {"asteria", "luna"}


@pytest.mark.parametrize(
    ("env", "stack"),
    [
        ({}, STACK_INFERENCE),
        ({"LIVEKIT_URL": CLOUD_URL}, STACK_INFERENCE),
        ({"OPENAI_API_KEY": "sk-x"}, STACK_OPENAI),
        ({"AZURE_OPENAI_ENDPOINT": "https://x"}, STACK_INFERENCE),  # an endpoint alone cannot authenticate
        ({"AZURE_OPENAI_ENDPOINT": "https://x", "AZURE_OPENAI_AD_TOKEN": "t"}, STACK_AZURE),
        ({**AZURE, "OPENAI_API_KEY": "sk-x"}, STACK_AZURE),  # azure before openai
        ({"AZURE_OPENAI_API_KEY": "k", "OPENAI_API_KEY": "sk-x"}, STACK_OPENAI),
        ({**AZURE, "FRIDAY_SPEECH_STACK": "inference"}, STACK_INFERENCE),  # an explicit choice wins
        ({"OPENAI_API_KEY": "sk-x", "FRIDAY_SPEECH_STACK": "Azure"}, STACK_AZURE),
    ],
)
def test_the_default_stack_follows_the_credentials_present(env: dict[str, str], stack: str) -> None:
    assert AgentConfig.from_env(env).stack == stack


def test_openai_stack_models_and_voice_from_env() -> None:
    config = AgentConfig.from_env(
        {
            "OPENAI_API_KEY": "sk-x",
            "FRIDAY_OPENAI_LLM_MODEL": "gpt-4o",
            "FRIDAY_OPENAI_STT_MODEL": "whisper-1",
            "FRIDAY_OPENAI_TTS_MODEL": "tts-1",
            "FRIDAY_TTS_VOICE": "coral",
        }
    )
    models = config.openai
    assert (models.llm_model, models.stt_model, models.tts_model) == ("gpt-4o", "whisper-1", "tts-1")
    catalog = voice_catalog(config)
    assert (catalog.provider, catalog.default_voice) == ("openai", "coral")
    assert catalog.known_voices is not None and "ash" in catalog.known_voices


@pytest.mark.parametrize("env", [{"FRIDAY_SPEECH_STACK": "watson"}, {"FRIDAY_SIP_WAIT_SECONDS": "soon"}])
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        AgentConfig.from_env(env)


@pytest.mark.parametrize(
    ("url", "cloud"),
    [
        (CLOUD_URL, True),
        ("https://friday.staging.livekit.cloud", True),
        ("friday.livekit.cloud", True),
        ("WSS://Friday.LiveKit.Cloud:443/", True),
        ("ws://localhost:7880", False),
        ("http://livekit-server.livekit.svc.cluster.local:7880", False),
        ("wss://livekit.cloud.example.com", False),
        ("wss://notlivekit.cloud", False),
    ],
)
def test_livekit_cloud_urls(url: str, cloud: bool) -> None:
    assert is_livekit_cloud(url) is cloud


@pytest.mark.parametrize(
    ("stack", "env"),
    [
        (STACK_INFERENCE, {"LIVEKIT_URL": CLOUD_URL}),
        (STACK_INFERENCE, {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_INFERENCE_API_KEY": "k",
                           "LIVEKIT_INFERENCE_API_SECRET": "s"}),
        (STACK_OPENAI, {"LIVEKIT_URL": "ws://localhost:7880", "OPENAI_API_KEY": "sk-x"}),
        (STACK_AZURE, {"LIVEKIT_URL": "ws://localhost:7880", **AZURE}),
        (STACK_AZURE, {**AZURE, "AZURE_OPENAI_API_KEY": "", "AZURE_OPENAI_AD_TOKEN": "t"}),
    ],
)  # fmt: skip
def test_a_stack_with_what_it_needs_passes(stack: str, env: dict[str, str]) -> None:
    assert stack_problem(stack, env) is None


LOCAL = {"LIVEKIT_URL": "ws://localhost:7880"}
AZURE_MISSING_ALL = (
    "AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN and OPENAI_API_VERSION are not set"
)


@pytest.mark.parametrize(
    ("stack", "env", "problem"),
    [
        (STACK_INFERENCE, LOCAL, "LIVEKIT_URL=ws://localhost:7880 is not a LiveKit Cloud URL"),
        (STACK_INFERENCE, {}, "LIVEKIT_URL is not set"),
        (STACK_INFERENCE, {**LOCAL, "LIVEKIT_INFERENCE_API_KEY": "k"}, "is not a LiveKit Cloud URL"),
        (STACK_OPENAI, {"LIVEKIT_URL": CLOUD_URL}, "OPENAI_API_KEY is not set"),
        (STACK_AZURE, {}, AZURE_MISSING_ALL),
        (STACK_AZURE, {**AZURE, "OPENAI_API_VERSION": " "}, "OPENAI_API_VERSION is not set"),
    ],
)
def test_a_stack_without_what_it_needs_is_named(stack: str, env: dict[str, str], problem: str) -> None:
    assert problem in (stack_problem(stack, env) or "")


def test_the_refusal_names_the_setting_and_what_every_stack_needs() -> None:
    env = {"FRIDAY_SPEECH_STACK": "inference", "LIVEKIT_URL": "ws://localhost:7880"}
    with pytest.raises(ConfigError) as refused:
        require_usable_stack(AgentConfig.from_env(env), env)
    message = str(refused.value)
    assert message.startswith("FRIDAY_SPEECH_STACK=inference, which cannot work here")
    assert "ws://localhost:7880" in message
    for stack in STACKS:
        assert f"\n  {stack}: " in message
    for variable in ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        assert variable in message


def test_the_refusal_says_when_the_stack_was_chosen_for_you() -> None:
    env = {"LIVEKIT_URL": "http://livekit-server.livekit.svc.cluster.local:7880"}
    with pytest.raises(ConfigError, match="FRIDAY_SPEECH_STACK is not set, so the stack is inference"):
        require_usable_stack(AgentConfig.from_env(env), env)
    require_usable_stack(AgentConfig.from_env({**env, "OPENAI_API_KEY": "sk-x"}), {**env, "OPENAI_API_KEY": "sk-x"})
