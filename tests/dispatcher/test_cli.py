"""`friday dispatcher serve` as a real process, driven by the `list`, `dispatch` and
`cancel` client subcommands (also real processes), and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from services.testing.livekit_api import LiveKitStandIn
from tests.dispatcher.conftest import AGENT

TOKEN = "cli-token-0123456789"
_LISTENING = re.compile(rb"dispatcher listening on (\S+):(\d+)")


async def _friday(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def served(livekit: LiveKitStandIn) -> AsyncIterator[tuple[str, dict[str, str], asyncio.subprocess.Process]]:
    env = {
        **os.environ,
        "DISPATCHER_HOST": "127.0.0.1",
        "DISPATCHER_TOKEN": TOKEN,
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
    }
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "dispatcher",
        "serve",
        "--port",
        "0",
        "--metrics-port",
        "0",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    target = ""
    try:
        async with asyncio.timeout(60):
            while not target:
                line = await proc.stderr.readline()
                if not line:
                    pytest.fail("dispatcher exited before listening")
                if match := _LISTENING.search(line):
                    target = f"127.0.0.1:{match.group(2).decode()}"
        yield target, {**env, "DISPATCHER_TARGET": target}, proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=30)


async def test_serve_list_dispatch_cancel_and_sigterm(
    livekit: LiveKitStandIn, served: tuple[str, dict[str, str], asyncio.subprocess.Process]
) -> None:
    livekit.create_room("cli-room")
    _, env, server = served

    code, out, err = await _friday("dispatcher", "dispatch", "cli-room", "--sip-call-id", "SCL_cli", env=env)
    assert code == 0, err
    dispatch_id = out.split("\t", 1)[0]
    assert dispatch_id.startswith("AD_")
    assert "created" in err
    code, _, err = await _friday("dispatcher", "dispatch", "cli-room", "--sip-call-id", "SCL_cli", env=env)
    assert code == 0 and "already existed" in err

    code, out, _ = await _friday("dispatcher", "list", "cli-room", env=env)
    assert code == 0
    ours = [line for line in out.splitlines() if f"agent={AGENT}" in line]
    assert len(ours) == 1 and ours[0].startswith(dispatch_id)
    assert len(out.splitlines()) == 2  # and the room's implicit dispatch, which LiveKit lists too

    code, out, _ = await _friday("dispatcher", "cancel", "cli-room", dispatch_id, env=env)
    assert code == 0 and out.startswith(dispatch_id)
    assert livekit.dispatches("cli-room") == []

    code, _, err = await _friday("dispatcher", "cancel", "cli-room", dispatch_id, env=env)
    assert code == 1 and "NOT_FOUND" in err

    no_token = {k: v for k, v in env.items() if k != "DISPATCHER_TOKEN"}
    code, _, err = await _friday("dispatcher", "list", "cli-room", env=no_token)
    assert code == 1 and "UNAUTHENTICATED" in err

    server.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.wait(), timeout=30) == 0
