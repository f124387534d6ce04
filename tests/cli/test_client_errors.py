"""The client commands with no mesh to talk to: the `friday` process against a port that
refuses connections (bound, never listening, so nothing else can take it meanwhile)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FRIDAY = str(Path(sys.executable).with_name("friday"))


@pytest.fixture
def refused_target() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _friday(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_TARGET")}
    return subprocess.run([FRIDAY, *args], capture_output=True, text=True, timeout=60, env=env)


def test_persona_get_names_the_address_tried_and_that_the_mesh_may_be_down(refused_target: str) -> None:
    done = _friday("persona", "get", "+918655701159", "--target", refused_target)
    assert done.returncode == 1 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["code"] == "UNAVAILABLE" and error["reason"] == "UNREACHABLE"
    assert error["target"] == refused_target
    assert f"no PersonaService is listening at {refused_target}" in error["hint"]
    assert "the mesh may not be running (start it with `friday up`)" in error["hint"]
    assert "PERSONA_TARGET" in error["hint"]


def test_dispatcher_list_says_the_same_through_the_shared_helper(refused_target: str) -> None:
    done = _friday("dispatcher", "list", "some-room", "--target", refused_target)
    assert done.returncode == 1 and done.stdout == ""
    first, hint = done.stderr.splitlines()
    assert first.startswith("error: UNAVAILABLE UNREACHABLE: ") and first.endswith(f"(target {refused_target})")
    assert hint.startswith(f"hint: no DispatcherService is listening at {refused_target}")
    assert "`friday up`" in hint and "DISPATCHER_TARGET" in hint
    assert "Traceback" not in done.stderr


def test_calls_list_reports_through_the_same_helper(refused_target: str) -> None:
    done = _friday("calls", "list", "--target", refused_target)
    assert done.returncode == 1 and done.stdout == ""
    first, hint = done.stderr.splitlines()
    assert first.startswith("error: UNAVAILABLE UNREACHABLE: ") and first.endswith(f"(target {refused_target})")
    assert hint.startswith(f"hint: no CallHistoryService is listening at {refused_target}") and "CALLS_TARGET" in hint


def test_the_commands_name_the_settings_their_clients_read() -> None:
    from services.calls.client import CallsClient
    from services.cli import calls, dispatcher
    from services.dispatcher.client import DispatcherClient

    for command, client in ((calls, CallsClient), (dispatcher, DispatcherClient)):
        assert (command.PREFIX, command.DEFAULT_TARGET) == (client.env_prefix, client.default_target)


def test_a_listener_that_never_answers_is_no_answer_within_the_timeout() -> None:
    with socket.socket() as sock:  # accepts connections (the kernel does), never speaks HTTP/2
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        target = f"127.0.0.1:{sock.getsockname()[1]}"
        done = _friday("persona", "get", "+918655701159", "--target", target, "--timeout", "1")
    assert done.returncode == 1
    error = json.loads(done.stderr)["error"]
    assert error["code"] == "DEADLINE_EXCEEDED" and error["reason"] == "NO_ANSWER"
    assert error["hint"].startswith(f"nothing at {target} answered within 1 s")
