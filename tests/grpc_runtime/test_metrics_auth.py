"""The metrics port behind METRICS_TOKEN: a real server refuses a scrape without the
token or with a wrong one (401 and a Bearer challenge), answers the right one, and
keeps /health open for the kubelet; the token is read from the environment and
never shows in repr or the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from services.common.metrics_auth import MetricsToken
from services.common.ports import ServicePorts
from services.grpc_runtime import GrpcServer, ServerConfig
from services.grpc_runtime.metrics import HEALTH_PATH
from tests.grpc_runtime.servicer import ProbeServicer, probe_spec

TOKEN = "metrics-token-for-the-tests-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_metrics_token_guards_metrics_and_leaves_health_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = ServerConfig(host="127.0.0.1", port=0, metrics_port=0, metrics_token=TOKEN)
    async with GrpcServer(config, [probe_spec(ProbeServicer())]) as server:
        base = f"http://127.0.0.1:{server.metrics_port}"
        async with httpx.AsyncClient(timeout=10) as client:
            missing = await client.get(f"{base}/metrics")
            wrong = await client.get(f"{base}/metrics", headers=bearer(TOKEN + "x"))
            prefix = await client.get(f"{base}/metrics", headers=bearer(TOKEN[:-1]))
            not_bearer = await client.get(f"{base}/metrics", headers={"Authorization": f"Basic {TOKEN}"})
            bare = await client.get(f"{base}/metrics", headers={"Authorization": TOKEN})
            root = await client.get(f"{base}/")  # the same metrics on /: guarded too
            right = await client.get(f"{base}/metrics", headers=bearer(TOKEN))
            any_case = await client.get(f"{base}/metrics", headers={"Authorization": f"bearer {TOKEN}"})
            health = await client.get(f"{base}{HEALTH_PATH}")
    for refused in (missing, wrong, prefix, not_bearer, bare, root):
        assert refused.status_code == 401, refused.request.headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "grpc_server_handled_total" not in refused.text and TOKEN not in refused.text
    assert right.status_code == 200 and "grpc_server_handled_total" in right.text
    assert any_case.status_code == 200
    assert (health.status_code, health.text) == (200, "SERVING\n")
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(config)


async def test_without_a_metrics_token_metrics_stay_open() -> None:
    config = ServerConfig(host="127.0.0.1", port=0, metrics_port=0)
    async with GrpcServer(config, [probe_spec(ProbeServicer())]) as server:
        async with httpx.AsyncClient(timeout=10) as client:
            # Prometheus's config sends a token whether the mesh wants one or not.
            plain = await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
            with_header = await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics", headers=bearer("any"))
    assert plain.status_code == with_header.status_code == 200


async def test_metrics_beyond_loopback_without_a_token_log_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = ServerConfig(host="127.0.0.1", port=0, metrics_host="0.0.0.0", metrics_port=0)
    async with GrpcServer(config, [probe_spec(ProbeServicer())]):
        pass
    assert any("METRICS_TOKEN" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    caplog.clear()
    guarded = ServerConfig(host="127.0.0.1", port=0, metrics_host="0.0.0.0", metrics_port=0, metrics_token=TOKEN)
    async with GrpcServer(guarded, [probe_spec(ProbeServicer())]):
        pass
    assert not any("METRICS_TOKEN" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("prefix", ["PERSONA", "DISPATCHER", "CALLS"])
def test_every_service_reads_the_one_metrics_token(prefix: str) -> None:
    config = ServerConfig.from_env(prefix, ServicePorts(grpc=1, metrics=2), environ={"METRICS_TOKEN": TOKEN})
    assert config.metrics_token == TOKEN
    assert TOKEN not in repr(config)
    unset = ServerConfig.from_env(prefix, ServicePorts(grpc=1, metrics=2), environ={"METRICS_TOKEN": " "})
    assert unset.metrics_token is None


def test_the_token_object_keeps_no_token_and_refuses_an_empty_one() -> None:
    token = MetricsToken(TOKEN)
    assert TOKEN not in repr(token) and not hasattr(token, "__dict__")
    assert token.admits(f"Bearer {TOKEN}") and not token.admits(None) and not token.admits("")
    with pytest.raises(ValueError):
        MetricsToken("")
