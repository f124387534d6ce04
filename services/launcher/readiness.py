"""Waiting for a service to say it is ready: grpc.health.v1 SERVING for the gRPC
services, `/ready` answering 200 for the gateway."""

from __future__ import annotations

import asyncio

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def grpc_serving(target: str, timeout: float) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


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
