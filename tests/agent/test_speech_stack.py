"""The configured speech stack is built with the persona's voice and language.
Construction only: no request is sent, no weights are downloaded (silero ships
inside livekit-local-inference)."""

from __future__ import annotations

import pytest
from livekit.agents import inference

from agent.config import AgentConfig
from agent.speech_stack import build_speech_stack
from agent.voice_selection import VoiceChoice


@pytest.fixture(autouse=True)
def livekit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:9")
    monkeypatch.setenv("LIVEKIT_API_KEY", "test-key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a-test-secret-long-enough-for-hs256-checks")


async def test_inference_stack_uses_persona_voice_and_language() -> None:
    stack = build_speech_stack(AgentConfig.from_env({}), VoiceChoice(voice="maya-voice", language="es-ES"))
    assert isinstance(stack.stt, inference.STT) and isinstance(stack.llm, inference.LLM)
    assert isinstance(stack.tts, inference.TTS)
    assert stack.tts.model == "cartesia/sonic-3"
    assert (stack.tts._opts.voice, stack.tts._opts.language) == ("maya-voice", "es-ES")
    assert isinstance(stack.vad, inference.VAD)


async def test_vad_can_be_switched_off() -> None:
    assert build_speech_stack(AgentConfig.from_env({"FRIDAY_VAD": "none"}), VoiceChoice("", "")).vad is None


async def test_azure_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    from livekit.plugins import openai

    config = AgentConfig.from_env()
    stack = build_speech_stack(config, VoiceChoice(voice="coral", language="en-US"))
    assert isinstance(stack.llm, openai.LLM) and isinstance(stack.tts, openai.TTS)
    assert isinstance(stack.stt, openai.STT)
    assert stack.tts._opts.voice == "coral"


async def test_openai_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    from livekit.plugins import openai

    config = AgentConfig.from_env()
    stack = build_speech_stack(config, VoiceChoice(voice="coral", language="es-ES"))
    assert isinstance(stack.llm, openai.LLM) and isinstance(stack.tts, openai.TTS)
    assert isinstance(stack.stt, openai.STT)
    assert stack.llm.model == "gpt-4.1-mini"
    assert (stack.tts._opts.model, stack.tts._opts.voice) == ("gpt-4o-mini-tts", "coral")
    assert stack.stt._opts.languages == ["es"]  # OpenAI transcription takes ISO-639-1
    # OpenAI's own API, not LiveKit's gateway and not Azure
    assert "openai.com" in str(stack.llm._client.base_url)
