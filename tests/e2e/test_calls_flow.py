"""Every call recorded, as a user sees it: `friday up` as a process (CRM and LiveKit
stand-ins as processes too), `friday simulate-call --agent-join --hangup`, then `friday
calls list`, `show` and `stats` read the call back from CallHistoryService: its persona,
answer time and duration."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services.testing.crm import BASE_PATH as CRM_BASE_PATH
from services.testing.process import standin_process
from tests.child_process import REPO_ROOT, ProcessOutput, free_port, is_alive

KEY = "APIe2ecalls"
SECRET = "e2e-calls-secret-that-is-at-least-thirty-two-bytes"
CRM_PERSONA = {
    "persona_id": "crm-calls",
    "persona_name": "Priya from the CRM",
    "personality": "You are Priya.",
    "welcome_message": "Hello from the CRM persona",
}
RECORD_WAIT_SECONDS = 60.0  # a cap for a stuck run; the poll ends as soon as the record is complete


def _friday(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_friday_up_records_a_simulated_call_from_ring_to_hang_up() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        personas = Path(tmp) / "crm.json"
        personas.write_text(json.dumps({"8655701159": CRM_PERSONA}))
        database = Path(tmp) / "calls.sqlite3"
        with (
            standin_process("services.testing.crm", "--personas", str(personas)) as crm,
            standin_process("services.testing.livekit_api", "--api-key", KEY, "--api-secret", SECRET) as livekit,
        ):
            livekit.control("workers", {"agent_name": "friday-ai-agent"})
            gateway_port = free_port()
            calls_port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO_ROOT),
                "LIVEKIT_URL": livekit.origin,
                "LIVEKIT_API_KEY": KEY,
                "LIVEKIT_API_SECRET": SECRET,
                "PERSONA_API_BASE": crm.origin + CRM_BASE_PATH,
            }
            for name in ("REDIS_URL", "PERSONA_FILE", "DISPATCHER_TOKEN", "CALLS_TOKEN", "CALLS_DATABASE_URL"):
                env.pop(name, None)
            up = subprocess.Popen(
                [
                    sys.executable, "-m", "services.cli", "up",
                    "--persona-port", str(free_port()),
                    "--dispatcher-port", str(free_port()),
                    "--calls-port", str(calls_port),
                    "--gateway-port", str(gateway_port),
                    "--persona-metrics-port", "0",
                    "--dispatcher-metrics-port", "0",
                    "--calls-metrics-port", "0",
                    "--calls-database-url", f"sqlite:///{database}",
                ],
                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            output = ProcessOutput(up)
            client_env = {**env, "CALLS_TARGET": f"127.0.0.1:{calls_port}"}
            try:
                output.wait_for("the mesh is ready", timeout=90)
                call = _friday(
                    env, "simulate-call", "--to", "+918655701159", "--from", "+14155550199", "--room", "e2e-calls",
                    "--gateway", f"http://127.0.0.1:{gateway_port}", "--agent-join", "--hangup",
                    "--answer-after", "2", "--talk-seconds", "40",
                )  # fmt: skip
                assert call.returncode == 0, call.stdout + call.stderr
                deadline = time.monotonic() + RECORD_WAIT_SECONDS
                while True:
                    listed = _friday(client_env, "calls", "list")
                    line = next((row for row in listed.stdout.splitlines() if "e2e-calls" in row), "")
                    if "duration" in line and "duration -" not in line:
                        break
                    assert time.monotonic() < deadline, listed.stdout + listed.stderr + output.text()
                    time.sleep(0.2)
                shown = _friday(client_env, "calls", "show", "e2e-calls")
                stats = _friday(client_env, "calls", "stats")
            finally:
                up.send_signal(signal.SIGINT)
                exit_code = up.wait(timeout=60)
            log = output.text()

    assert "persona crm-calls@sha256:" in line, line
    assert " answered " in line, line
    assert re.search(r"answer 2\.00s", line), line
    duration = float(re.search(r"duration (\d+\.\d+)s", line).group(1))  # type: ignore[union-attr]
    assert 40.0 <= duration <= 43.0, line  # whole-second webhook times: hang-up at ring + 42 s, floored
    assert "to +918655701159" in line
    assert shown.returncode == 0, shown.stderr
    assert "outcome:        answered" in shown.stdout
    assert "persona source: PERSONA_SOURCE_CRM" in shown.stdout
    assert "caller number:  +*******0199" in shown.stdout  # masked by default
    assert "sip_joined" in shown.stdout and "agent_joined" in shown.stdout and "sip_left" in shown.stdout
    assert stats.returncode == 0, stats.stderr
    total = stats.stdout.splitlines()[0]
    assert re.search(r"calls\s+1\s+answered\s+1\b", total), stats.stdout
    assert re.search(r"^crm-calls@sha256:\S+\s+calls\s+1\b", stats.stdout, re.MULTILINE), stats.stdout
    assert exit_code == 0, log
    pids = [int(p) for p in re.findall(r"^(?:persona|dispatcher|calls|gateway)\s+(\d+)\s", log, re.MULTILINE)]
    assert len(pids) == 4, log
    assert not [pid for pid in pids if is_alive(pid)], log
