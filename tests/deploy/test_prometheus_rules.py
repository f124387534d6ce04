"""deploy/prometheus/friday-alerts.yml through the real promtool: the rules load,
their unit tests (friday-alerts.test.yml) pass, and every alert has a unit test
where it fires and one where it stays quiet. The scrape configs load too."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.observability import (
    INSTALL_HINT,
    KUBERNETES_SCRAPE_CONFIG,
    PROMETHEUS_DIR,
    RULE_TESTS,
    RULES,
    SCRAPE_CONFIG,
    alert_rules,
    binary,
)

PROMTOOL = binary("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=f"promtool not installed: {INSTALL_HINT}")


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_unit_tests_fail_when_an_alert_breaks(tmp_path: Path) -> None:
    # The unit tests would catch a threshold that no longer fires: guard against a
    # test file that passes whatever the rules say.
    broken = RULES.read_text().replace("> 0.25", "> 0.5")
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "FridayCRMFailing" in result.stdout + result.stderr


def _cases() -> list[dict[str, Any]]:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    return [case for group in tests["tests"] for case in group.get("alert_rule_test", [])]


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alert_rules()])
def test_every_alert_has_a_firing_and_a_quiet_unit_test(alert: str) -> None:
    cases = [case for case in _cases() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"no unit test where {alert} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no unit test where {alert} stays quiet"


def test_unit_tests_name_only_alerts_that_exist() -> None:
    assert {case["alertname"] for case in _cases()} <= {rule["alert"] for rule in alert_rules()}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_how_bad_and_what_happened(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Friday")
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@needs_promtool
def test_promtool_accepts_the_scrape_config_for_friday_up(tmp_path: Path) -> None:
    # promtool refuses a credentials_file that does not exist, and the metrics token
    # beside the config is the user's (never committed): check a copy with one beside it.
    checked = tmp_path / SCRAPE_CONFIG.name
    checked.write_text(SCRAPE_CONFIG.read_text())
    (tmp_path / "metrics-token").write_text("a-token\n")
    for name in yaml.safe_load(SCRAPE_CONFIG.read_text())["rule_files"]:
        (tmp_path / name).write_text((PROMETHEUS_DIR / name).read_text())
    result = promtool("check", "config", checked.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "metrics-token").unlink()
    missing = promtool("check", "config", checked.name, cwd=tmp_path)
    assert missing.returncode != 0 and "metrics-token" in missing.stdout + missing.stderr


@needs_promtool
def test_promtool_accepts_the_kubernetes_scrape_config_but_its_discovery(tmp_path: Path) -> None:
    # Debian's Prometheus is built without Kubernetes service discovery, so its
    # promtool refuses kubernetes_sd_configs. Everything else (relabelling, rule
    # files) is checked with static targets in its place.
    config = yaml.safe_load(KUBERNETES_SCRAPE_CONFIG.read_text())
    (tmp_path / "token").write_text("a-token\n")
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["10.0.0.1:9101"]}]
        # The mounted Secret's file exists only in the Prometheus pod.
        job["authorization"]["credentials_file"] = str(tmp_path / "token")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(checked), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
