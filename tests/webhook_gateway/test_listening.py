"""Where the gateway listens: loopback unless GATEWAY_HOST says otherwise, and a
bind failure that names the address and why."""

from __future__ import annotations

import socket

import httpx
import pytest

from services.common.listen_address import ListenError
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from services.webhook_gateway.server import build_server


async def test_the_default_config_binds_loopback_and_serves_there() -> None:
    config = HttpServerConfig.from_env({"PORT": "0"})
    async with build_server(GatewayConfig(), config) as gateway:
        assert gateway.endpoints() == {"http": f"127.0.0.1:{gateway.port}"}
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{gateway.url}/health")).status_code == 200


async def test_a_busy_port_is_a_listen_error_naming_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        gateway = build_server(GatewayConfig(), HttpServerConfig(port=busy))
        with pytest.raises(ListenError, match=f"gateway HTTP cannot listen on 127.0.0.1:{busy}: .*in use"):
            await gateway.start()
