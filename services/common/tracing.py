"""How a call's trace id travels: as gRPC metadata between Friday services, and
into every log line of the call."""

from __future__ import annotations

# gRPC metadata keys must be lowercase.
TRACE_ID_METADATA_KEY = "x-friday-trace-id"


def trace_id_from_event_id(event_id: str) -> str:
    """LiveKit event ids (`EV_...`) are unique per event and survive redelivery,
    so the trace of a retried webhook joins the trace of its first attempt."""
    return event_id or ""
