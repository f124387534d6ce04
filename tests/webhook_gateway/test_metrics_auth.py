"""The gateway's /metrics behind METRICS_TOKEN: a real gateway refuses a scrape
without the token or with a wrong one and answers the right one, while /health and
/ready (the kubelet's probes) stay open; the token is read from the environment and
kept out of repr and the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from services.webhook_gateway.server import build_server

TOKEN = "gateway-metrics-token-0123456789abcdef"


async def test_metrics_need_the_token_and_the_probes_do_not(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = GatewayConfig.from_env({"METRICS_TOKEN": TOKEN})
    assert config.metrics_token == TOKEN and TOKEN not in repr(config)
    async with build_server(config, HttpServerConfig(port=0)) as gateway:
        async with httpx.AsyncClient(timeout=10) as client:
            missing = await client.get(f"{gateway.url}/metrics")
            wrong = await client.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}-not"})
            right = await client.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            health = await client.get(f"{gateway.url}/health")
            # Nothing listens on the upstream targets: not ready, but answered without a token.
            ready = await client.get(f"{gateway.url}/ready")
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "friday_gateway" not in refused.text
    assert right.status_code == 200 and "friday_gateway_webhooks_total" in right.text
    assert health.status_code == 200
    assert ready.status_code in (200, 503) and ready.json()["status"] in ("ready", "not_ready")
    assert TOKEN not in caplog.text


async def test_without_a_token_metrics_stay_open() -> None:
    async with build_server(GatewayConfig(), HttpServerConfig(port=0)) as gateway:
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{gateway.url}/metrics")).status_code == 200


async def test_metrics_beyond_loopback_without_a_token_log_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with build_server(GatewayConfig(), HttpServerConfig(host="0.0.0.0", port=0)):
        pass
    assert any("METRICS_TOKEN" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    caplog.clear()
    async with build_server(GatewayConfig(metrics_token=TOKEN), HttpServerConfig(host="0.0.0.0", port=0)):
        pass
    assert not any("METRICS_TOKEN" in r.getMessage() for r in caplog.records)
