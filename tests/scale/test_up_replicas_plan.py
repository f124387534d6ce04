"""`friday up --replicas N`: what it refuses and what it plans (no processes started
except the one CLI run that must refuse)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.launcher.up import PlanError, plan
from tests.child_process import REPO_ROOT


def _settings(**overrides: str) -> dict[str, str]:
    from services.launcher.settings import SETTINGS

    values = {s.env: s.default for s in SETTINGS}
    values.update(overrides)
    return values


def test_replicas_without_redis_are_refused_by_the_cli_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "FRIDAY_UP_REPLICAS")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "up", "--replicas", "2"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--replicas 2 needs --redis-url" in result.stderr
    assert "friday up: the mesh is ready" not in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"FRIDAY_UP_REPLICAS": "two", "REDIS_URL": "redis://r"}, "whole number"),
        ({"FRIDAY_UP_REPLICAS": "0", "REDIS_URL": "redis://r"}, "between 1 and 10"),
        ({"FRIDAY_UP_REPLICAS": "11", "REDIS_URL": "redis://r"}, "between 1 and 10"),
        (
            {"FRIDAY_UP_REPLICAS": "2", "REDIS_URL": "redis://r", "DISPATCHER_PORT": "50061"},
            "port 50061 would be used by both persona-2 and dispatcher-1",
        ),
        ({"FRIDAY_UP_REPLICAS": "2"}, "needs --redis-url"),
    ],
)
def test_settings_that_cannot_work_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan(_settings(**overrides), with_agent=False)


def test_three_replicas_get_distinct_ports_and_every_gateway_balances_over_all_of_them() -> None:
    services = plan(_settings(FRIDAY_UP_REPLICAS="3", REDIS_URL="redis://127.0.0.1:6379/0"), with_agent=False)
    names = [s.child.name for s in services]
    # One CallHistoryService whatever the replicas: its database is the shared state.
    assert names == [
        *(f"{kind}-{i}" for kind in ("persona", "dispatcher") for i in (1, 2, 3)),
        "calls",
        *(f"gateway-{i}" for i in (1, 2, 3)),
    ]
    assert [s.address for s in services if s.kind == "persona"] == [
        "grpc://127.0.0.1:50051",
        "grpc://127.0.0.1:50061",
        "grpc://127.0.0.1:50071",
    ]
    assert [s.child.env["DISPATCHER_PORT"] for s in services if s.kind == "dispatcher"] == ["50052", "50062", "50072"]
    assert [s.child.env["PERSONA_METRICS_PORT"] for s in services if s.kind == "persona"] == ["9101", "9111", "9121"]
    gateways = [s for s in services if s.kind == "gateway"]
    assert [g.child.env["PORT"] for g in gateways] == ["8080", "8081", "8082"]
    for gateway in gateways:
        assert gateway.child.env["PERSONA_TARGET"] == "ipv4:127.0.0.1:50051,127.0.0.1:50061,127.0.0.1:50071"
        assert gateway.child.env["DISPATCHER_TARGET"] == "ipv4:127.0.0.1:50052,127.0.0.1:50062,127.0.0.1:50072"
        assert gateway.child.env["REDIS_URL"] == "redis://127.0.0.1:6379/0"
        assert gateway.child.env["CALLS_TARGET"] == "127.0.0.1:50053"


def test_one_replica_keeps_the_plain_names_and_targets() -> None:
    services = plan(_settings(), with_agent=False)
    assert [s.child.name for s in services] == ["persona", "dispatcher", "calls", "gateway"]
    assert services[3].child.env["PERSONA_TARGET"] == "127.0.0.1:50051"
    assert services[3].child.env["CALLS_TARGET"] == "127.0.0.1:50053"


def test_a_gateway_replica_on_the_agents_health_port_is_refused_and_moving_the_gateways_fixes_it() -> None:
    with pytest.raises(PlanError, match="port 8081 would be used by both gateway-2 and agent"):
        plan(_settings(FRIDAY_UP_REPLICAS="2", REDIS_URL="redis://r"), with_agent=True)
    services = plan(_settings(FRIDAY_UP_REPLICAS="2", REDIS_URL="redis://r", PORT="8090"), with_agent=True)
    assert [s.child.name for s in services][-1] == "agent"
