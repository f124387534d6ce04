"""When `friday up` may bind beyond loopback: every service token, the metrics token
and a LiveKit secret of one's own, or a clear refusal naming what is missing."""

from __future__ import annotations

import pytest

from services.launcher.exposure import exposure_problem
from services.launcher.settings import SETTINGS

STRONG_SECRET = "a-livekit-secret-of-at-least-thirty-two-bytes"


def _settings(**overrides: str) -> dict[str, str]:
    values = {s.env: s.default for s in SETTINGS}
    values.update(overrides)
    return values


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_nothing(host: str) -> None:
    assert exposure_problem(_settings(FRIDAY_UP_HOST=host), {}) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "192.0.2.10", "my-host.example"])
def test_any_other_host_without_tokens_names_every_missing_setting(host: str) -> None:
    problem = exposure_problem(_settings(FRIDAY_UP_HOST=host), {})
    assert problem is not None
    assert f"--host {host} makes the mesh reachable from other machines" in problem
    for missing in (
        "--dispatcher-token",
        "--persona-token",
        "--calls-token",
        "--metrics-token",
        "--livekit-api-secret",
    ):
        assert missing in problem


def test_tokens_and_an_own_secret_allow_any_host() -> None:
    settings = _settings(
        FRIDAY_UP_HOST="0.0.0.0",
        DISPATCHER_TOKEN="d" * 32,
        PERSONA_TOKEN="p" * 32,
        CALLS_TOKEN="c" * 32,
        METRICS_TOKEN="m" * 32,
        LIVEKIT_API_SECRET=STRONG_SECRET,
    )
    assert exposure_problem(settings, {}) is None


def test_open_metrics_alone_are_refused_off_loopback() -> None:
    settings = _settings(
        FRIDAY_UP_HOST="0.0.0.0",
        DISPATCHER_TOKEN="d" * 32,
        PERSONA_TOKEN="p" * 32,
        CALLS_TOKEN="c" * 32,
        LIVEKIT_API_SECRET=STRONG_SECRET,
    )
    problem = exposure_problem(settings, {})
    assert problem is not None and "needs --metrics-token;" in problem
    # On loopback the metrics token stays optional, like the others.
    assert exposure_problem({**settings, "FRIDAY_UP_HOST": "127.0.0.1"}, {}) is None


def test_the_webhook_secret_is_the_one_the_gateway_verifies_with() -> None:
    tokens = {
        "FRIDAY_UP_HOST": "0.0.0.0",
        "DISPATCHER_TOKEN": "d" * 32,
        "PERSONA_TOKEN": "p" * 32,
        "CALLS_TOKEN": "c" * 32,
        "METRICS_TOKEN": "m" * 32,
    }
    problem = exposure_problem(_settings(**tokens), {"LIVEKIT_WEBHOOK_API_SECRET": STRONG_SECRET})
    assert problem is None
    problem = exposure_problem(
        _settings(**tokens, LIVEKIT_API_SECRET=STRONG_SECRET), {"LIVEKIT_WEBHOOK_API_SECRET": "secret"}
    )
    assert problem is not None and "--livekit-api-secret" in problem and "--persona-token" not in problem
