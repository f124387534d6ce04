"""What every typed Friday client shares: the channel it owns, a default deadline, the
bearer token and trace id on each call, its settings from `<PREFIX>_TARGET`,
`<PREFIX>_TOKEN` and `<PREFIX>_TLS_*`, and one error for a failed call
(`ServiceCallError`: gRPC code + ErrorInfo reason + whether a retry may help).

A service's client subclasses `ServiceClient`, names its environment prefix, default
target and default deadline, builds its stub on `self.channel` and sends through `_call`. A client whose
channel carries the token and trace id itself, and whose callers want grpc's own errors,
subclasses `ChannelClient`: just the channel's lifetime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Self

import grpc
from google.protobuf.message import Message

from services.common.env import Environment
from services.grpc_runtime.call_metadata import RETRYABLE_CODES, call_metadata
from services.grpc_runtime.channel import create_channel
from services.grpc_runtime.config import ClientTLSConfig
from services.grpc_runtime.errors import error_reason


class ServiceCallError(Exception):
    """A call to a Friday service failed. `reason` is the service's stable ErrorInfo
    reason ('' when none came back, e.g. nothing was listening)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{code.name} {reason or '-'}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        """A later identical call may succeed (whether repeating it is safe is the method's business)."""
        return self.code in RETRYABLE_CODES

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> Self:
        return cls(error.code(), error_reason(error), error.details() or "")


class ChannelClient:
    """A client's channel and its lifetime: closed on `aclose` / leaving `async with`,
    unless the caller passed in a channel of its own."""

    def __init__(self, channel: grpc.aio.Channel, *, owns_channel: bool = True) -> None:
        self._channel = channel
        self._owns_channel = owns_channel

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    async def aclose(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ServiceClient(ChannelClient):
    """Base of the typed clients. `env_prefix` and `default_target` say where `from_env`
    reads its settings, `default_timeout_seconds` is the deadline of a call that names
    none, and `call_error` is the ServiceCallError subclass `_call` raises."""

    env_prefix: ClassVar[str]
    default_target: ClassVar[str]
    default_timeout_seconds: ClassVar[float]
    call_error: ClassVar[type[ServiceCallError]] = ServiceCallError

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLSConfig | None = None,
        default_timeout: float | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        """`channel` overrides `target`/`tls` (e.g. a load-balanced channel the caller built)
        and stays open when the client closes; the token is then added per call."""
        super().__init__(
            channel if channel is not None else create_channel(target, tls=tls), owns_channel=channel is None
        )
        self._token = token
        self._default_timeout = self.default_timeout_seconds if default_timeout is None else default_timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """`<PREFIX>_TARGET`, `<PREFIX>_TOKEN` and `<PREFIX>_TLS_CA_FILE` / `_CLIENT_CERT_FILE` /
        `_CLIENT_KEY_FILE` / `_SERVER_NAME` (the shared runtime's client TLS settings);
        `overrides` that are not None win (e.g. command-line flags)."""
        env = Environment(environ)
        settings: dict[str, Any] = {
            "target": env.text(f"{cls.env_prefix}_TARGET", cls.default_target),
            "token": env.optional(f"{cls.env_prefix}_TOKEN"),
            "tls": ClientTLSConfig.from_env(cls.env_prefix, environ),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    async def _call(
        self,
        method: Callable[..., Awaitable[Any]],
        request: Message,
        timeout: float | None,
        trace_id: str | None = None,
    ) -> Any:
        metadata = call_metadata(token=self._token, trace_id=trace_id)
        try:
            return await method(request, timeout=timeout or self._default_timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise self.call_error.from_rpc_error(exc) from exc
