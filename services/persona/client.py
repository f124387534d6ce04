"""PersonaClient: the typed async client internal teams import.

    async with PersonaClient("localhost:50051") as personas:
        reply = await personas.get_persona("+918655701159", allow_default=True)
        reply.persona.welcome_message, reply.source

Every call has a deadline (`timeout`, default 2 s). UNAVAILABLE from a server that
is down or restarting is retried by the channel's service config; an UNAVAILABLE
that PersonaService returns after its own CRM retries carries a retry pushback and
is not retried again. Errors raise `grpc.aio.AioRpcError` as they come (internal teams
branch on its code, and the channel's retries need it unwrapped); `error_reason(exc)`
gives the stable ErrorInfo reason (PERSONA_NOT_FOUND, ...). The bearer token and trace id
travel on the channel, so the shared `ChannelClient` only owns the channel here."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common import ports
from services.grpc_runtime import ChannelClient, ClientTLSConfig, RetryPolicy, create_channel, error_reason

SERVICE_NAME = persona_service_pb2.DESCRIPTOR.services_by_name["PersonaService"].full_name
DEFAULT_TARGET = ports.PERSONA.local_target
DEFAULT_TIMEOUT_SECONDS = 2.0
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.1, max_backoff_seconds=0.5)


__all__ = ["DEFAULT_TARGET", "DEFAULT_TIMEOUT_SECONDS", "PersonaClient", "error_reason"]


class PersonaClient(ChannelClient):
    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        tls: ClientTLSConfig | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        bearer_token: str | None = None,
        trace_id: Callable[[], str] | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        channel = create_channel(
            target, tls=tls, services=[SERVICE_NAME], retry=retry, bearer_token=bearer_token, trace_id=trace_id
        )
        super().__init__(channel)
        self._stub = persona_service_pb2_grpc.PersonaServiceStub(self.channel)

    async def get_persona(
        self,
        dialed_number: str,
        *,
        allow_default: bool = False,
        caller_number: str = "",
        at: datetime.datetime | None = None,
        timeout: float | None = None,
    ) -> persona_service_pb2.GetPersonaResponse:
        """`caller_number` and `at` (an aware time; default now) matter only for a
        number whose answer is a campaign."""
        request = persona_service_pb2.GetPersonaRequest(
            dialed_number=dialed_number, allow_default=allow_default, caller_number=caller_number
        )
        if at is not None:
            request.evaluation_time.FromDatetime(at)
        return await self._stub.GetPersona(request, timeout=self.timeout if timeout is None else timeout)

    async def invalidate_persona(
        self, dialed_number: str, *, timeout: float | None = None
    ) -> persona_service_pb2.InvalidatePersonaResponse:
        request = persona_service_pb2.InvalidatePersonaRequest(dialed_number=dialed_number)
        return await self._stub.InvalidatePersona(request, timeout=self.timeout if timeout is None else timeout)

    async def notify_changes(
        self, dialed_numbers: list[str], *, timeout: float | None = None
    ) -> persona_service_pb2.NotifyPersonaChangesResponse:
        request = persona_service_pb2.NotifyPersonaChangesRequest(dialed_numbers=dialed_numbers)
        return await self._stub.NotifyPersonaChanges(request, timeout=self.timeout if timeout is None else timeout)

    async def watch_personas(
        self, dialed_numbers: list[str] | None = None, *, resume_token: str = ""
    ) -> AsyncIterator[persona_service_pb2.WatchPersonasResponse]:
        """The change stream (no deadline: it lasts as long as the caller reads it).
        Reconnecting is the caller's choice: pass the last event's resume_token."""
        request = persona_service_pb2.WatchPersonasRequest(
            dialed_numbers=dialed_numbers or [], resume_token=resume_token
        )
        call = self._stub.WatchPersonas(request)
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()

    async def close(self) -> None:
        """The name this client has always had for `aclose`."""
        await self.aclose()
