"""Domain errors of the gateway. The upstream adapters (upstreams.py) turn gRPC
failures into these, so the call flow decides on facts — may a redelivery succeed,
is the request itself invalid — and never on gRPC status names; app.py maps the
outcome to the HTTP status LiveKit acts on."""

from __future__ import annotations


class UpstreamError(Exception):
    """PersonaService or DispatcherService failed the call.

    `retryable`: the same request may succeed later (what a LiveKit redelivery needs).
    `invalid_request`: the upstream judged the request itself invalid; no redelivery
    can succeed. `reason` is the upstream's stable ErrorInfo reason ("" if none).
    `code` names the upstream's status, for messages and logs only."""

    def __init__(
        self,
        service: str,
        code: str,
        message: str,
        *,
        retryable: bool,
        invalid_request: bool,
        reason: str = "",
    ) -> None:
        super().__init__(f"{code}: {service}: {message}")
        self.service = service
        self.code = code
        self.message = message
        self.retryable = retryable
        self.invalid_request = invalid_request
        self.reason = reason


class BodyTooLarge(Exception):
    """The webhook body is over the configured limit."""
