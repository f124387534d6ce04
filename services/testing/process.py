"""Run a stand-in as a separate process (end-to-end tests) and talk to its control API.

with standin_process("services.testing.livekit_api", "--api-key", "k", "--api-secret", s) as lk:
    lk.origin            # "http://127.0.0.1:PORT"
    lk.control("fail_next", {"n": 2})
    lk.state()
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where this `services` package is imported from (the checkout, or site-packages): the
# child imports the same code even when it runs from a checkout that is not installed.
IMPORT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StandInProcess:
    process: subprocess.Popen[str]
    origin: str

    def control(self, name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /_standin/<name> with a JSON body; returns the JSON answer."""
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request(
            f"{self.origin}/_standin/{name}", data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.origin}/_standin/state", timeout=10) as resp:
            return json.loads(resp.read())


@contextmanager
def standin_process(module: str, *args: str, ready_timeout: float = 20.0) -> Iterator[StandInProcess]:
    """Start ``python -m <module> --port 0 ...``, wait for its READY line, SIGTERM it on exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(IMPORT_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", module, *(args if "--port" in args else ("--port", "0", *args))]
    proc = subprocess.Popen(cmd, cwd=IMPORT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        origin = _wait_ready(proc, ready_timeout)
        yield StandInProcess(proc, origin)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _wait_ready(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"stand-in {proc.args!r} exited with {proc.wait()} before READY")
            if line.startswith("READY "):
                return line.split()[1]
    raise TimeoutError(f"stand-in {proc.args!r} not ready after {timeout}s")
