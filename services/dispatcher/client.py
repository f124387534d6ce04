"""A small typed async client for DispatcherService, used by the `friday dispatcher`
CLI and the tests (the webhook gateway has its own adapter in
services/webhook_gateway/upstreams.py). Every call has a deadline (default or per call), carries
the bearer token and the call's trace id, and fails with `DispatcherCallError`
(gRPC code + ErrorInfo reason + whether a retry may help).

No channel retry policy: the service retries LiveKit itself within the deadline, and
stacking retries would multiply attempts (docs/architecture.md, "Deadlines and retries")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import Message

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from friday.dispatcher.v1 import dispatcher_service_pb2 as pb
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc as pb_grpc
from services.common.env import Environment
from services.grpc_runtime import RETRYABLE_CODES, ClientTLSConfig, call_metadata, create_channel, error_info

DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_TARGET = "localhost:50052"


class DispatcherCallError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{code.name} {reason or '-'}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        """A later identical call may succeed (DispatchAgent is idempotent, so retrying is safe)."""
        return self.code in RETRYABLE_CODES

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> DispatcherCallError:
        info = error_info(error)
        return cls(error.code(), info.reason if info is not None else "", error.details() or "")


class DispatcherClient:
    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLSConfig | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        """`channel` overrides `target`/`tls` (e.g. a load-balanced channel the caller built);
        the token is then added per call."""
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else create_channel(target, tls=tls)
        self._stub = pb_grpc.DispatcherServiceStub(self._channel)
        self._token = token
        self._default_timeout = default_timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> DispatcherClient:
        """DISPATCHER_TARGET, DISPATCHER_TOKEN and DISPATCHER_TLS_CA_FILE / _CLIENT_CERT_FILE /
        _CLIENT_KEY_FILE / _SERVER_NAME (the shared runtime's client TLS settings)."""
        env = Environment(environ)
        settings: dict[str, Any] = {
            "target": env.text("DISPATCHER_TARGET", DEFAULT_TARGET),
            "token": env.optional("DISPATCHER_TOKEN"),
            "tls": ClientTLSConfig.from_env("DISPATCHER", environ),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    async def dispatch_agent(
        self,
        room: str,
        agent_name: str,
        metadata: AgentJobMetadata | None = None,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> pb.DispatchAgentResponse:
        request = pb.DispatchAgentRequest(room=room, agent_name=agent_name, metadata=metadata)
        return await self._call(self._stub.DispatchAgent, request, timeout, trace_id)

    async def list_dispatches(
        self, room: str, *, timeout: float | None = None, trace_id: str | None = None
    ) -> list[pb.Dispatch]:
        response = await self._call(self._stub.ListDispatches, pb.ListDispatchesRequest(room=room), timeout, trace_id)
        return list(response.dispatches)

    async def trunk_numbers(
        self, trunk_id: str, *, timeout: float | None = None, trace_id: str | None = None
    ) -> list[str]:
        request = pb.GetTrunkNumbersRequest(trunk_id=trunk_id)
        response = await self._call(self._stub.GetTrunkNumbers, request, timeout, trace_id)
        return list(response.numbers)

    async def cancel_dispatch(
        self, room: str, dispatch_id: str, *, timeout: float | None = None, trace_id: str | None = None
    ) -> pb.Dispatch:
        request = pb.CancelDispatchRequest(room=room, dispatch_id=dispatch_id)
        response = await self._call(self._stub.CancelDispatch, request, timeout, trace_id)
        return response.dispatch

    async def _call(
        self, method: Callable[..., Awaitable[Any]], request: Message, timeout: float | None, trace_id: str | None
    ) -> Any:
        metadata = call_metadata(token=self._token, trace_id=trace_id)
        try:
            return await method(request, timeout=timeout or self._default_timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise DispatcherCallError.from_rpc_error(exc) from exc

    async def aclose(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> DispatcherClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
