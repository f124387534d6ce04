"""Standard gRPC health (grpc.health.v1) that can reflect a service's dependencies.

Status model (as grpclib's health checks): the overall service "" is SERVING while
the process runs and accepts calls. Each registered service is SERVING unless one
of its dependencies is reported unhealthy (e.g. PersonaService with the CRM
unreachable) — it may still answer (stale cache, default persona), which is why
the overall status does not follow it. During shutdown everything is NOT_SERVING.

Dependencies are reported passively (`report(service, dependency, healthy)` from
request outcomes) and/or actively by probes the server polls on an interval.

`List` (every service's status in one answer) is served too: grpcio-health-checking's
servicer predates it, and the generated base class raises NotImplementedError, which
grpc logs as an ERROR traceback on every call — any unauthenticated peer could fill the
error log with it (health stays open when auth is on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

DependencyProbe = Callable[[], Awaitable[bool]]
DependencyReporter = Callable[[bool], Awaitable[None]]


class ListingHealthServicer(HealthServicer):
    """The library's aio health servicer, plus `List` over the statuses it was given
    (recorded through its public `set` / `enter_graceful_shutdown`: the library keeps its
    own record private)."""

    def __init__(self) -> None:
        super().__init__()
        self._listed: dict[str, int] = {"": SERVING}
        self._final = False

    async def set(self, service: str, status: int) -> None:
        await super().set(service, status)
        if not self._final:  # as the library: after shutdown began, statuses stay put
            self._listed[service] = status

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._final = True
        self._listed = dict.fromkeys(self._listed, NOT_SERVING)

    async def List(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        # (The type stubs predate List's messages: HealthListRequest / HealthListResponse.)
        messages: Any = health_pb2
        statuses = {name: health_pb2.HealthCheckResponse(status=status) for name, status in self._listed.items()}
        return messages.HealthListResponse(statuses=statuses)


@dataclass(frozen=True)
class Probe:
    service: str
    dependency: str
    check: DependencyProbe
    interval_seconds: float


class HealthReporter:
    """Owns the aio HealthServicer and the dependency state behind each service."""

    def __init__(self) -> None:
        self.servicer = ListingHealthServicer()
        self._deps: dict[str, dict[str, bool]] = {}
        self._probes: list[Probe] = []
        self._probe_tasks: list[asyncio.Task[None]] = []
        self._running = False

    def register_service(self, service: str) -> None:
        self._deps.setdefault(service, {})

    def add_probe(self, service: str, dependency: str, check: DependencyProbe, interval_seconds: float) -> None:
        """Poll `check()` every `interval_seconds` while the server runs; True = healthy.
        A probe that raises counts as unhealthy."""
        self.register_service(service)
        self._probes.append(Probe(service, dependency, check, interval_seconds))

    def reporter(self, service: str, dependency: str) -> DependencyReporter:
        """A plain `async (healthy: bool) -> None` callable to hand to service logic, so
        the logic reports its dependency without knowing about gRPC health."""
        self.register_service(service)

        async def report(healthy: bool) -> None:
            await self.report(service, dependency, healthy)

        return report

    async def report(self, service: str, dependency: str, healthy: bool) -> None:
        deps = self._deps.setdefault(service, {})
        before = deps.get(dependency)
        if before == healthy:
            # Nothing changed, so neither did the status start() or the last change set.
            # (The dispatcher reports LiveKit's health after every LiveKit request.)
            return
        deps[dependency] = healthy
        logger.log(
            logging.INFO if healthy else logging.WARNING,
            "health: %s dependency %s is %s",
            service,
            dependency,
            "healthy" if healthy else "UNHEALTHY",
        )
        if self._running:
            await self.servicer.set(service, self._status_of(service))

    @property
    def serving(self) -> bool:
        """The overall status "" as a bool: True from start() until shutdown begins."""
        return self._running

    def is_healthy(self, service: str) -> bool:
        return all(self._deps.get(service, {}).values())

    async def start(self) -> None:
        self._running = True
        await self.servicer.set("", SERVING)
        for service in self._deps:
            await self.servicer.set(service, self._status_of(service))
        self._probe_tasks = [
            asyncio.create_task(self._run_probe(p), name=f"probe:{p.dependency}") for p in self._probes
        ]

    async def enter_shutdown(self) -> None:
        """NOT_SERVING for "" and every service, permanently (load balancers drain)."""
        self._running = False
        for task in self._probe_tasks:
            task.cancel()
        await asyncio.gather(*self._probe_tasks, return_exceptions=True)
        self._probe_tasks = []
        await self.servicer.enter_graceful_shutdown()

    def _status_of(self, service: str) -> int:
        return SERVING if self.is_healthy(service) else NOT_SERVING

    async def _run_probe(self, probe: Probe) -> None:
        while True:
            try:
                healthy = bool(await probe.check())
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken probe must not kill the loop; it means "unhealthy"
                logger.exception("health probe %s/%s failed", probe.service, probe.dependency)
                healthy = False
            await self.report(probe.service, probe.dependency, healthy)
            await asyncio.sleep(probe.interval_seconds)
