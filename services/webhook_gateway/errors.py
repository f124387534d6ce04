"""Domain errors of the gateway. The upstream adapters (upstreams.py) turn gRPC
failures into these, so the call flow decides on facts — may a redelivery succeed,
is the request itself invalid — and never on gRPC status names; app.py maps the
outcome to the HTTP status LiveKit acts on."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass


# Compared by identity and shown by its message, as any exception (no dataclass __eq__/__repr__).
@dataclass(eq=False, repr=False)
class UpstreamError(Exception):
    """PersonaService or DispatcherService failed the call.

    `retryable`: the same request may succeed later (what a LiveKit redelivery needs).
    `invalid_request`: the upstream judged the request itself invalid; no redelivery
    can succeed. `reason` is the upstream's stable ErrorInfo reason ("" if none).
    `code` names the upstream's status, for messages and logs only."""

    service: str
    code: str
    message: str
    _: KW_ONLY
    retryable: bool
    invalid_request: bool
    reason: str = ""

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.service}: {self.message}")


class BodyTooLarge(Exception):
    """The webhook body is over the configured limit."""
