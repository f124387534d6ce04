"""What a Friday client sends with every call, built one way: the bearer token and
the call's trace id, and which failed calls are worth making again."""

from __future__ import annotations

import grpc

from services.common.log_safety import MAX_TRACE_ID_CHARS, safe_trace_id
from services.common.tracing import TRACE_ID_METADATA_KEY

# After these codes the same request may succeed later (a server restarting or
# overloaded, a deadline that was too short, a call cut by shutdown); the others say
# something about the request or the service that a retry will not change.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)

# gRPC metadata values must be printable ASCII and fit the peer's header limit; trace
# ids come from webhook event ids, which a signed body may set to anything: sent as
# safe_trace_id makes them, the form log lines show too.
__all__ = ["MAX_TRACE_ID_CHARS", "RETRYABLE_CODES", "bearer_metadata", "call_metadata", "safe_trace_id"]

Metadata = tuple[tuple[str, str], ...]


def bearer_metadata(token: str | None) -> Metadata:
    return (("authorization", f"Bearer {token}"),) if token else ()


def call_metadata(*, token: str | None = None, trace_id: str | None = None) -> Metadata:
    """Metadata for one call: `authorization: Bearer <token>` and `x-friday-trace-id`."""
    trace = ((TRACE_ID_METADATA_KEY, safe_trace_id(trace_id)),) if trace_id else ()
    return bearer_metadata(token) + trace
