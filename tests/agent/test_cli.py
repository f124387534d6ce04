"""`friday agent start|dev` hands over to the livekit-agents CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.cli import build_parser


def test_agent_subcommand_is_registered() -> None:
    args = build_parser().parse_args(["agent", "start", "--url", "ws://x", "--log-level", "debug"])
    assert args.mode == "start"
    assert args.livekit_args == ["--url", "ws://x", "--log-level", "debug"]


@pytest.mark.parametrize("mode", ["start", "dev"])
def test_livekit_flags_reach_the_livekit_cli(mode: str) -> None:
    # A separate process: the livekit CLI owns sys.argv, signals and the event loop.
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "agent", mode, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "COLUMNS": "200", "AGENT_TO_DISPATCH": "cli-agent"},
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--url", "--api-key", "--api-secret", "--log-level"):
        assert flag in done.stdout
    assert "LIVEKIT_URL" in done.stdout


def test_the_usage_line_names_the_pass_through_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "agent", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: friday agent [-h] {dev,start} [LIVEKIT_ARGS ...]\n")
    assert "LIVEKIT_ARGS  handed to the livekit-agents CLI" in done.stdout


def test_no_mode_is_a_usage_error_that_asks_for_the_mode_only() -> None:
    done = subprocess.run([sys.executable, "-m", "services.cli", "agent"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.endswith("friday agent: error: say which mode: start or dev\n")
    assert "LIVEKIT_ARGS" not in done.stderr.splitlines()[-1]


def test_bad_agent_config_exits_with_a_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "agent", "start"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "FRIDAY_SPEECH_STACK": "watson"},
    )
    assert done.returncode == 2
    assert "FRIDAY_SPEECH_STACK" in done.stderr


def test_a_speech_stack_that_cannot_work_stops_the_worker_at_start_up() -> None:
    # LiveKit Inference is LiveKit Cloud's: against a self-hosted server it would fail at
    # the first caller's first word, so the real command refuses to start at all.
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "agent", "start"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "FRIDAY_SPEECH_STACK": "inference", "LIVEKIT_URL": "ws://localhost:7880"},
    )
    assert done.returncode == 2, done.stderr
    assert "FRIDAY_SPEECH_STACK=inference" in done.stderr
    assert "ws://localhost:7880 is not a LiveKit Cloud URL" in done.stderr
    for needs in ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        assert needs in done.stderr
    assert "Traceback" not in done.stderr


def test_the_url_flag_is_the_url_checked() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "agent", "dev", "--url", "ws://127.0.0.1:7880"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "", "LIVEKIT_URL": "wss://friday.livekit.cloud"},
    )
    assert done.returncode == 2, done.stderr
    assert "LIVEKIT_URL=ws://127.0.0.1:7880 is not a LiveKit Cloud URL" in done.stderr
