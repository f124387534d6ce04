"""services/common/grpc_polling.py: the engine choice, and that `friday` makes it before grpc loads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from services.common import grpc_polling

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_sets_the_legacy_epoll_engine_when_unset() -> None:
    env: dict[str, str] = {}
    grpc_polling.prefer_legacy_epoll(env)
    assert env == {"GRPC_EXPERIMENTS": "-event_engine_client,-event_engine_listener"}


def test_an_operators_setting_wins_even_when_empty() -> None:
    for value in ("", "event_engine_client"):
        env = {"GRPC_EXPERIMENTS": value}
        grpc_polling.prefer_legacy_epoll(env)
        assert env == {"GRPC_EXPERIMENTS": value}


def test_reports_too_late_once_grpc_is_imported() -> None:
    import grpc  # noqa: F401 — this test process has grpc loaded anyway

    assert grpc_polling.prefer_legacy_epoll({}) is False


def _grpc_experiments_seen_at_grpc_import(env_value: str | None) -> str:
    """Runs `friday persona get` (which loads grpc) in a fresh interpreter and reports the
    GRPC_EXPERIMENTS value in force at the moment `import grpc` first ran."""
    code = textwrap.dedent(
        """
        import os, sys
        seen = []
        class Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "grpc" and not seen:
                    seen.append(os.environ.get("GRPC_EXPERIMENTS", "<unset>"))
                return None
        sys.meta_path.insert(0, Spy())
        from services.cli import main
        main(["persona", "get", "+14155550100", "--target", "127.0.0.1:1", "--timeout", "0.2"])
        print("SEEN", seen[0] if seen else "<grpc never imported>")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    if env_value is not None:
        env["GRPC_EXPERIMENTS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("SEEN ")).removeprefix("SEEN ")


def test_friday_chooses_the_engine_before_grpc_loads() -> None:
    assert _grpc_experiments_seen_at_grpc_import(None) == grpc_polling.LEGACY_EPOLL


def test_friday_leaves_an_operators_engine_choice_alone() -> None:
    assert _grpc_experiments_seen_at_grpc_import("") == ""
