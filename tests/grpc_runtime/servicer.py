"""A small test servicer (on the PersonaService contract, since any service will do)
whose behaviour is picked by the request, to drive the runtime from the outside."""

from __future__ import annotations

import asyncio
import logging

import grpc

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.grpc_runtime import ServiceSpec, abort_with_error, current_trace_id, remaining_budget

SERVICE_NAME = "friday.persona.v1.PersonaService"

# What a service's own code logs while handling a call ("log" command).
probe_log = logging.getLogger("tests.grpc_runtime.probe")


class ProbeServicer(persona_service_pb2_grpc.PersonaServiceServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.fail_remaining = 0
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def GetPersona(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.entered.set()
        command = request.dialed_number
        if command == "budget":
            return persona_service_pb2.GetPersonaResponse(age_seconds=remaining_budget(context, 5.0))
        if command == "log":
            probe_log.info("handling the log probe")
            return persona_service_pb2.GetPersonaResponse(normalized_number="ok")
        if command == "trace":
            return persona_service_pb2.GetPersonaResponse(normalized_number=current_trace_id())
        if command == "error":
            await abort_with_error(
                context,
                grpc.StatusCode.NOT_FOUND,
                "nothing here",
                reason="THING_NOT_FOUND",
                domain="test.friday",
                metadata={"thing": "42"},
            )
        if command in ("flaky", "flaky-no-retry"):
            if self.fail_remaining > 0:
                self.fail_remaining -= 1
                pushback = (("grpc-retry-pushback-ms", "-1"),) if command == "flaky-no-retry" else ()
                await abort_with_error(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    "try again",
                    reason="FLAKY",
                    domain="test.friday",
                    trailing_metadata=pushback,
                )
        if command == "hold":
            await self.release.wait()
        if command == "crash":
            raise RuntimeError("boom")
        return persona_service_pb2.GetPersonaResponse(normalized_number="ok")

    async def InvalidatePersona(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        return persona_service_pb2.InvalidatePersonaResponse(normalized_number="invalidated")


def probe_spec(servicer: ProbeServicer, *, admin_methods: tuple[str, ...] = ()) -> ServiceSpec:
    return ServiceSpec.of(servicer, persona_service_pb2, "PersonaService", admin_methods=admin_methods)
