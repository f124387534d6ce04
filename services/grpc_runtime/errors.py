"""Rich gRPC errors: a google.rpc.Status carrying a google.rpc.ErrorInfo with a
stable machine-readable `reason`, a `domain` naming the service and free metadata.

Server side: `await abort_with_error(context, code, message, reason=..., domain=...)`.
Client side: `error_info(rpc_error)` returns the ErrorInfo (or None), `error_reason(rpc_error)`
its reason ('' when there is none).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, NotRequired, TypedDict, Unpack

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


class ErrorDetails(TypedDict):
    """What a failed call carries besides its code and message: the ErrorInfo's stable
    `reason`, the `domain` naming the service and free `metadata`, and any further
    `trailing_metadata` (e.g. `grpc-retry-pushback-ms: -1` to stop client retries)."""

    reason: str
    domain: str
    metadata: NotRequired[Mapping[str, str] | None]
    trailing_metadata: NotRequired[Sequence[tuple[str, str]]]


def error_status(code: grpc.StatusCode, message: str, **details: Unpack[ErrorDetails]) -> grpc.Status:
    """A grpc.Status whose trailing metadata carries google.rpc.Status + ErrorInfo, then
    `trailing_metadata`."""
    info = error_details_pb2.ErrorInfo(
        reason=details["reason"], domain=details["domain"], metadata=dict(details.get("metadata") or {})
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=_code_number(code), message=message, details=[detail])
    base = rpc_status.to_status(status)
    trailing_metadata = details.get("trailing_metadata", ())
    if not trailing_metadata:
        return base
    return _Status(base.code, base.details, tuple(base.trailing_metadata) + tuple(trailing_metadata))


async def abort_with_error(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, **details: Unpack[ErrorDetails]
) -> NoReturn:
    """End the RPC with `code`, `message` and an ErrorInfo detail. Always raises."""
    await context.abort_with_status(error_status(code, message, **details))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises


def error_info(error: Any) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo inside a failed call (`grpc.aio.AioRpcError` or `grpc.RpcError`)."""
    try:
        status = rpc_status.from_call(error)
    except (ValueError, AttributeError):
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def error_reason(error: Any) -> str:
    """The ErrorInfo reason of a failed call ('' when there is none)."""
    info = error_info(error)
    return info.reason if info is not None else ""


def _code_number(code: grpc.StatusCode) -> int:
    number = code.value[0]
    # Guard against a StatusCode the google.rpc.Code enum does not know.
    code_pb2.Code.Name(number)
    return number


class StatusTable:
    """A service's domain errors → gRPC codes, in one place per service. Entries are
    checked in order with isinstance, so list the most specific class first; anything
    not listed is INTERNAL (a bug, not a caller's mistake)."""

    def __init__(self, entries: Sequence[tuple[type[BaseException], grpc.StatusCode]]) -> None:
        self._entries = tuple(entries)

    def code_of(self, error: BaseException) -> grpc.StatusCode:
        for cls, code in self._entries:
            if isinstance(error, cls):
                return code
        return grpc.StatusCode.INTERNAL
