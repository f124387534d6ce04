"""The harness runs end to end on a tiny load: every scenario produces rows, the
checks that are about correctness (one CRM request, one dispatch per call, the floor
making the mesh's LiveKit calls) hold, the results are written, and a quick run judges
no target. No timing is asserted: speed lives in `python -m bench`."""

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
        # Each timed step runs long enough for a handful of calls: rows, not measurements, are checked.
        "--open-duration", "0.5", "--closed-duration", "0.5", "--grpc-duration", "0.3",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads((tmp_path / "smoke.json").read_text())
    rows = {row["id"]: row for row in result["rows"]}
    for sid in ("1a", "1b", "2-50", "3-c1", "4", "5", "6-bare", "6-health", "6-get", "7a", "7-c1"):
        assert sid in rows, f"scenario {sid} missing: {sorted(rows)}"
        assert rows[sid]["ok"] > 0, rows[sid]
        assert rows[sid]["error_count"] == 0, rows[sid]["errors"]

    # A smoke run says so and judges nothing, though every target is still measured.
    assert result["judged"] is False
    assert {t["passed"] for t in result["targets"]} == {None}
    measured = {t["target"]: t["measured"] for t in result["targets"]}
    # (Not saturation: on a busy machine no level may keep p99 under the limit in so short a run.)
    unmeasured = [name for name, value in measured.items() if value is None and name != "mesh / floor saturation"]
    assert not unmeasured, measured
    assert "quick" in done.stdout and "no targets judged" in done.stdout

    legs = rows["7p"]["paired"]["legs"]  # mesh, floor and a bare gRPC hop in alternating blocks
    assert set(legs) == {"mesh", "floor", "bare-hop"}
    assert all(len(leg["p50_ms"]) == 2 for leg in legs.values())
    assert rows["7p"]["ok"] == 3 * 2 * 10 and rows["7p"]["error_count"] == 0
    # The floor does the mesh's LiveKit work, call for call: the ratios compare like with like.
    assert legs["mesh"]["livekit_calls_per_call"] == legs["floor"]["livekit_calls_per_call"]
    # ListRooms (the room is there), ListDispatch (the guard), CreateDispatch, then ListDispatch
    # until the worker holds the job (one read or more, by when the job shows).
    calls = legs["floor"]["livekit_calls_per_call"]
    assert set(calls) == {"ListRooms", "ListDispatch", "CreateDispatch"}
    assert calls["ListRooms"] == calls["CreateDispatch"] == 1.0 and calls["ListDispatch"] >= 2.0
    assert len(rows["6p"]["paired"]["ratios"]) == 2 and rows["6p"]["error_count"] == 0

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
    assert "not judged" in table and "**MISS**" not in table
