"""Waiting for a service to say it is ready: its launch report first (only the
child `friday up` started can send it, so a port already held by another mesh
cannot pass for this one), then, on the address it reported, grpc.health.v1
SERVING for the gRPC services, `/ready` answering 200 for the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from services.common.launch_report import LaunchReport
from services.common.listen_address import dialable_host, host_port
from services.grpc_runtime.channel import create_channel, is_serving
from services.grpc_runtime.config import ClientTLSConfig

ReadyCheck = Callable[[LaunchReport], Awaitable[bool]]


def dial_address(bound: str) -> str:
    """The host:port a client on this machine dials for a server bound on `bound`."""
    host, _, port = bound.rpartition(":")
    return host_port(dialable_host(host), int(port))


async def grpc_serving(target: str, timeout: float, tls: ClientTLSConfig | None = None) -> bool:
    async with create_channel(target, tls=tls) as channel:
        return await is_serving(channel, timeout)


async def http_ready(url: str, timeout: float) -> bool:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def grpc_ready_check(tls: ClientTLSConfig | None, timeout: float = 1.0) -> ReadyCheck:
    async def check(report: LaunchReport) -> bool:
        return await grpc_serving(dial_address(report.listening["grpc"]), timeout, tls)

    return check


def gateway_ready_check(timeout: float = 1.0) -> ReadyCheck:
    async def check(report: LaunchReport) -> bool:
        return await http_ready(f"http://{dial_address(report.listening['http'])}/ready", timeout)

    return check


async def wait_until(check: Callable[[], Awaitable[bool]], *, interval: float = 0.1) -> None:
    """Polls `check()` until it is true; the caller bounds the wait."""
    while not await check():  # noqa: ASYNC110 — readiness lives in another process; polling is the only way
        await asyncio.sleep(interval)
