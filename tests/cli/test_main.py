"""The `friday` command itself: exit codes and a reader that goes away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FRIDAY = str(Path(sys.executable).with_name("friday"))


def test_no_command_is_a_usage_error() -> None:
    done = subprocess.run([FRIDAY], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "usage: friday" in done.stderr and done.stdout == ""
