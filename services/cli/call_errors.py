"""How the `friday` client commands (`persona get|invalidate`, `dispatcher list|cancel|dispatch`,
`calls list|show|stats`) report a failed gRPC call, one way for all of them.

A service that answered puts a stable `reason` in google.rpc.ErrorInfo. A call that reached no
service (nothing listening, wrong address) carries none: grpc's own "failed to connect to all
addresses" says neither which address the command was given nor that the usual cause is a mesh
that is not running, so the failure gets a reason of the CLI's own and a hint saying both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.grpc_runtime import error_info

# Reasons the CLI sets itself, when no service answered with one.
UNREACHABLE = "UNREACHABLE"
NO_ANSWER = "NO_ANSWER"


@dataclass(frozen=True)
class CallFailure:
    """A failed call as the CLI reports it. `target` is the address the command tried."""

    code: grpc.StatusCode
    message: str
    reason: str
    target: str
    metadata: dict[str, str] = field(default_factory=dict)
    hint: str = ""

    def as_json(self) -> str:
        """`{"error": {...}}` with one key order on every run: fixed fields, sorted metadata
        (a protobuf map's iteration order is not part of its contract)."""
        error: dict[str, Any] = {
            "code": self.code.name,
            "message": self.message,
            "reason": self.reason,
            "target": self.target,
            "metadata": dict(sorted(self.metadata.items())),
        }
        if self.hint:
            error["hint"] = self.hint
        return json.dumps({"error": error}, indent=2)

    def as_text(self) -> str:
        line = f"error: {self.code.name} {self.reason or '-'}: {self.message} (target {self.target})"
        return f"{line}\nhint: {self.hint}" if self.hint else line


def describe(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str] | None,
    *,
    service: str,
    target: str,
    target_setting: str,
    timeout: float,
) -> CallFailure:
    """The failure of a call to `service` at `target`. `target_setting` names the flag and
    environment variable that choose the address, for the hint."""
    hint = ""
    if not reason and code == grpc.StatusCode.UNAVAILABLE:
        reason = UNREACHABLE
        hint = (
            f"no {service} is listening at {target}: the mesh may not be running (start it with `friday up`), "
            f"or {target_setting} names the wrong address"
        )
    elif not reason and code == grpc.StatusCode.DEADLINE_EXCEEDED:
        # The services answer their own deadline errors with a reason before the caller's
        # deadline; no reason means nothing answered in time at all.
        reason = NO_ANSWER
        hint = (
            f"nothing at {target} answered within {timeout:g} s: check {target_setting}, "
            f"that {service} is up (`friday up`), or give it longer with --timeout"
        )
    return CallFailure(code, message, reason, target, dict(metadata or {}), hint)


def describe_rpc_error(
    exc: grpc.RpcError, *, service: str, target: str, target_setting: str, timeout: float
) -> CallFailure:
    info = error_info(exc)
    return describe(
        exc.code(),
        exc.details() or "",
        info.reason if info is not None else "",
        dict(info.metadata) if info is not None else None,
        service=service,
        target=target,
        target_setting=target_setting,
        timeout=timeout,
    )
