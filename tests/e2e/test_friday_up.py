"""The whole mesh as a user runs it: `friday up` as a process, pointed at the CRM
and LiveKit stand-ins (also processes), a call from `friday simulate-call`, then
Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from services.common import job_metadata
from services.testing.crm import BASE_PATH as CRM_BASE_PATH
from services.testing.process import standin_process
from tests.child_process import REPO_ROOT, ProcessOutput, free_port, is_alive

KEY = "APIe2ekey"
SECRET = "e2e-secret-that-is-at-least-thirty-two-bytes"
CRM_PERSONA = {
    "persona_id": "crm-e2e",
    "persona_name": "Priya from the CRM",
    "personality": "You are Priya.",
    "welcome_message": "Hello from the CRM persona",
}


def test_friday_up_serves_a_simulated_call_and_stops_cleanly_on_ctrl_c() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        personas = Path(tmp) / "crm.json"
        personas.write_text(json.dumps({"8655701159": CRM_PERSONA}))
        with (
            standin_process("services.testing.crm", "--personas", str(personas)) as crm,
            standin_process("services.testing.livekit_api", "--api-key", KEY, "--api-secret", SECRET) as livekit,
        ):
            # A LiveKit deployment has the agent's worker; simulate-call puts the caller's room into LiveKit.
            livekit.control("workers", {"agent_name": "friday-ai-agent"})
            gateway_port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO_ROOT),
                "LIVEKIT_URL": livekit.origin,
                "LIVEKIT_API_KEY": KEY,
                "LIVEKIT_API_SECRET": SECRET,
                "PERSONA_API_BASE": crm.origin + CRM_BASE_PATH,
            }
            for name in ("REDIS_URL", "PERSONA_FILE", "DISPATCHER_TOKEN"):
                env.pop(name, None)
            up = subprocess.Popen(
                [
                    sys.executable, "-m", "services.cli", "up",
                    "--persona-port", str(free_port()),
                    "--dispatcher-port", str(free_port()),
                    "--gateway-port", str(gateway_port),
                    "--persona-metrics-port", "0",
                    "--dispatcher-metrics-port", "0",
                    "--calls-port", str(free_port()),
                    "--calls-metrics-port", "0",
                    "--calls-database-url", ":memory:",
                ],
                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            output = ProcessOutput(up)
            try:
                output.wait_for("the mesh is ready", timeout=60)
                call = subprocess.run(
                    [
                        sys.executable, "-m", "services.cli", "simulate-call",
                        "--to", "+918655701159", "--from", "+14155550199", "--room", "e2e-room",
                        "--gateway", f"http://127.0.0.1:{gateway_port}", "--repeat", "2", "--agent-join",
                    ],
                    cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
                )  # fmt: skip
            finally:
                up.send_signal(signal.SIGINT)
                exit_code = up.wait(timeout=60)
            log = output.text()

            assert call.returncode == 0, call.stdout + call.stderr
            assert "dispatched AD_" in call.stdout
            assert "Priya from the CRM" in call.stdout
            assert "PERSONA_SOURCE_CRM" in call.stdout

            state = livekit.state()
            assert ("CreateRoom", 200) in [(c["method"], c["status"]) for c in state["calls"]]
            dispatches = state["dispatches"].get("e2e-room", [])
            assert len(dispatches) == 1, state
            metadata = job_metadata.decode(dispatches[0]["metadata"])
            assert [job["status"] for job in state["jobs"]] == ["JS_RUNNING"]  # the worker took the call
            assert metadata.persona.display_name == "Priya from the CRM"
            assert metadata.call.caller_number == "+14155550199"

            assert exit_code == 0, log
            pids = [int(pid) for pid in re.findall(r"^(?:persona|dispatcher|gateway)\s+(\d+)\s", log, re.MULTILINE)]
            assert len(pids) == 3, log
            assert not [pid for pid in pids if is_alive(pid)], log
