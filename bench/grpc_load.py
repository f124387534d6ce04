"""gRPC side of the load generator: a closed loop of unary calls on one grpc.aio
channel (one HTTP/2 connection, as the gateway's own upstream channel), either
PersonaService.GetPersona or the standard grpc.health.v1 Check — the cheapest
unary call a Python gRPC server can answer, and so the ceiling for GetPersona."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc

from .stats import summarize_ms

_CALL_TIMEOUT_SECONDS = 5.0


def _unary(channel: grpc.aio.Channel, method: str, number: str, caller: str = "") -> Callable[[], Awaitable[object]]:
    if method == "get_persona":
        persona_stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        persona_request = persona_service_pb2.GetPersonaRequest(
            dialed_number=number, allow_default=True, caller_number=caller
        )
        return lambda: persona_stub.GetPersona(persona_request, timeout=_CALL_TIMEOUT_SECONDS)
    if method == "health":
        health_stub = health_pb2_grpc.HealthStub(channel)
        health_request = health_pb2.HealthCheckRequest(service="")
        # types-grpcio-health-checking declares HealthStub without its methods.
        return lambda: health_stub.Check(health_request, timeout=_CALL_TIMEOUT_SECONDS)  # type: ignore[attr-defined]
    raise ValueError(f"unknown gRPC method {method!r}")


class GrpcJob:
    """`prepare` opens the channel and warms it; `run` is the measured closed loop."""

    def __init__(self, job: dict[str, Any]) -> None:
        self._job = job
        self._channel: grpc.aio.Channel | None = None

    async def prepare(self) -> dict[str, Any]:
        self._channel = grpc.aio.insecure_channel(self._job["target"])
        call = _unary(self._channel, self._job["method"], self._job.get("number", ""), self._job.get("caller", ""))
        warmup = int(self._job.get("warmup", 0))
        for _ in range(warmup):
            await call()
        return {"prepared": 0, "warmup_sent": warmup}

    async def run(self) -> dict[str, Any]:
        assert self._channel is not None, "prepare first"
        try:
            job = self._job
            return await self._closed_loop(
                _unary(self._channel, job["method"], job.get("number", ""), job.get("caller", ""))
            )
        finally:
            await self._channel.close()

    async def _closed_loop(self, call: Callable[[], Awaitable[object]]) -> dict[str, Any]:
        """`concurrency` callers until `duration` seconds have passed or, when the job
        sets `count`, that many calls were sent (with concurrency 1: sequential calls)."""
        concurrency = int(self._job["concurrency"])
        count = int(self._job["count"]) if "count" in self._job else None
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        sent = 0
        began = perf_counter()
        stop_at = began + float(self._job.get("duration", math.inf))

        async def caller() -> None:
            nonlocal sent
            while perf_counter() < stop_at and (count is None or sent < count):
                sent += 1
                started = perf_counter()
                try:
                    await call()
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] += 1
                    continue
                latencies.append(perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = perf_counter() - began
        return {
            "latency_ms": summarize_ms(latencies),
            "ok": len(latencies),
            "errors": dict(errors),
            "error_count": sum(errors.values()),
            "wall_s": round(wall, 3),
            "rate_per_s": round(len(latencies) / wall, 1),
            "concurrency": concurrency,
        }
