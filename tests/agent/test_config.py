"""AgentConfig from the environment."""

from __future__ import annotations

import pytest

from agent.config import DEFAULT_AGENT_NAME, STACK_AZURE, STACK_INFERENCE, AgentConfig, ConfigError
from agent.speech_stack import voice_catalog


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


def test_azure_is_chosen_only_with_endpoint_and_credential() -> None:
    assert AgentConfig.from_env({"AZURE_OPENAI_ENDPOINT": "https://x"}).stack == STACK_INFERENCE
    both = {"AZURE_OPENAI_ENDPOINT": "https://x", "AZURE_OPENAI_API_KEY": "k"}
    assert AgentConfig.from_env(both).stack == STACK_AZURE
    assert AgentConfig.from_env({**both, "FRIDAY_SPEECH_STACK": "inference"}).stack == STACK_INFERENCE


@pytest.mark.parametrize("env", [{"FRIDAY_SPEECH_STACK": "watson"}, {"FRIDAY_SIP_WAIT_SECONDS": "soon"}])
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        AgentConfig.from_env(env)
