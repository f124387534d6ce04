"""A small typed async client for CallHistoryService, used by the `friday calls` CLI
and the tests (the gateway reports through its own adapter in
services/webhook_gateway/call_reporter.py). Every call has a deadline and carries the
bearer token; failures raise `CallsCallError` (gRPC code + ErrorInfo reason)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import Message

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1 import call_history_service_pb2_grpc as pb_grpc
from friday.calls.v1.call_pb2 import CallEvent
from services.common.env import Environment
from services.grpc_runtime import ClientTLSConfig, call_metadata, create_channel, error_info

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_TARGET = "localhost:50053"


class CallsCallError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{code.name} {reason or '-'}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> CallsCallError:
        info = error_info(error)
        return cls(error.code(), info.reason if info is not None else "", error.details() or "")


class CallsClient:
    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLSConfig | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._channel = create_channel(target, tls=tls)
        self._stub = pb_grpc.CallHistoryServiceStub(self._channel)
        self._token = token
        self._default_timeout = default_timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> CallsClient:
        """CALLS_TARGET, CALLS_TOKEN and CALLS_TLS_CA_FILE / _CLIENT_CERT_FILE / _CLIENT_KEY_FILE / _SERVER_NAME."""
        env = Environment(environ)
        settings: dict[str, Any] = {
            "target": env.text("CALLS_TARGET", DEFAULT_TARGET),
            "token": env.optional("CALLS_TOKEN"),
            "tls": ClientTLSConfig.from_env("CALLS", environ),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    async def record(self, event: CallEvent, *, timeout: float | None = None) -> pb.RecordCallEventResponse:
        return await self._call(self._stub.RecordCallEvent, pb.RecordCallEventRequest(event=event), timeout)

    async def list_calls(self, request: pb.ListCallsRequest, *, timeout: float | None = None) -> pb.ListCallsResponse:
        return await self._call(self._stub.ListCalls, request, timeout)

    async def get_call(self, call: str, *, timeout: float | None = None) -> pb.GetCallResponse:
        return await self._call(self._stub.GetCall, pb.GetCallRequest(call=call), timeout)

    async def stats(self, request: pb.GetCallStatsRequest, *, timeout: float | None = None) -> pb.GetCallStatsResponse:
        return await self._call(self._stub.GetCallStats, request, timeout)

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Message, timeout: float | None) -> Any:
        try:
            return await method(
                request, timeout=timeout or self._default_timeout, metadata=call_metadata(token=self._token)
            )
        except grpc.aio.AioRpcError as exc:
            raise CallsCallError.from_rpc_error(exc) from exc

    async def aclose(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> CallsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
