"""The harness runs end to end on a tiny load: every scenario produces rows, the
checks that are about correctness (one CRM request, one dispatch per call) hold, and
the results are written. No timing is asserted: speed lives in `python -m bench`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_every_scenario(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [
        sys.executable, "-m", "bench", "--quick", "--output-dir", str(tmp_path), "--output-name", "smoke",
        "--burst-size", "10", "--cold-count", "2", "--sequential-count", "10",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads((tmp_path / "smoke.json").read_text())
    rows = {row["id"]: row for row in result["rows"]}
    for sid in ("1a", "1b", "2-50", "3-c1", "4", "5", "6-bare", "6-health", "6-get", "7a", "7-c1"):
        assert sid in rows, f"scenario {sid} missing: {sorted(rows)}"
        assert rows[sid]["ok"] > 0, rows[sid]
        assert rows[sid]["error_count"] == 0, rows[sid]["errors"]

    paired = rows["7p"]["paired"]  # mesh and floor in alternating blocks
    assert len(paired["mesh_p50_ms"]) == len(paired["floor_p50_ms"]) == 2
    assert rows["7p"]["ok"] == 2 * 2 * 10 and rows["7p"]["error_count"] == 0
    ratio = next(t for t in result["targets"] if t["target"] == "mesh / floor p50")
    assert ratio["source"].startswith("7p: median of 2 block pairs") and ratio["measured"] > 0

    burst = rows["4"]["checks"]
    assert burst["crm_requests"] == 1  # PersonaService coalesced the simultaneous misses
    assert burst["dispatches"] == burst["answered_ok"] == 10  # one agent per call, none twice
    assert rows["5"]["standins"]["crm_requests_for_numbers"] == 2  # each cold number fetched once
    assert rows["1a"]["standins"]["livekit_creates"] == rows["1a"]["ok"]
    for service in ("gateway", "persona", "dispatcher"):
        assert rows["1a"]["processes"][service]["peak_rss_mb"] > 0

    table = (tmp_path / "smoke.md").read_text()
    assert f"Python {platform.python_version()}" in table
    assert f"{os.cpu_count()} cores" in table
    assert "| 7a | floor sequential |" in table
