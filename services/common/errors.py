"""The base of every service's domain errors. The domain logic raises them and never
imports grpc; each servicer maps the classes to gRPC codes in one place (its
`StatusTable`) and sends `reason` and `metadata` as the google.rpc.ErrorInfo."""

from __future__ import annotations


class DomainError(Exception):
    """`reason` is stable and machine-readable (callers branch on it), the message is
    for people, `metadata` goes into the ErrorInfo. A subclass names its reason; an
    instance may override it (a reason decided at run time)."""

    reason: str = "FAILED"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
