"""Waiting for a service to say it is ready: grpc.health.v1 SERVING for the gRPC
services, `/ready` answering 200 for the gateway."""

from __future__ import annotations

import asyncio

import httpx

from services.grpc_runtime.channel import create_channel, is_serving
from services.grpc_runtime.config import ClientTLSConfig


async def grpc_serving(target: str, timeout: float, tls: ClientTLSConfig | None = None) -> bool:
    async with create_channel(target, tls=tls) as channel:
        return await is_serving(channel, timeout)


async def http_ready(url: str, timeout: float) -> bool:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_until(check, *, interval: float = 0.1) -> None:
    """Polls `check()` until it is true; the caller bounds the wait."""
    while not await check():  # noqa: ASYNC110 — readiness lives in another process; polling is the only way
        await asyncio.sleep(interval)
