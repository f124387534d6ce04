"""`friday chaos --json`: one object per fault, its keys in a fixed order, and the exit
code says whether every row passed (records included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FRIDAY = str(Path(sys.executable).with_name("friday"))


def test_json_report_of_one_clean_fault() -> None:
    done = subprocess.run(
        [FRIDAY, "chaos", "--calls", "3", "--fault", "none", "--arrival-seconds", "0.3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (fault,) = json.loads(done.stdout)
    assert fault["fault"] == "none" and fault["failed"] is False
    assert (fault["calls"], fault["records"], fault["records_answered"], fault["records_missing"]) == (3, 3, 3, 0)
    assert (fault["records_extra"], fault["records_wrong_outcome"], fault["records_wrong_persona"]) == (0, 0, 0)
    assert list(fault)[:2] == ["fault", "calls"] and list(fault)[-2:] == ["failed", "seconds"]
