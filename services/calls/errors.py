"""Domain errors of CallHistoryService. Each carries a stable `reason` (the ErrorInfo
reason callers branch on); the servicer maps the classes to gRPC codes in one place."""

from __future__ import annotations

from services.common.errors import DomainError


class CallsError(DomainError):
    reason = "CALLS_FAILED"


class InvalidEvent(CallsError):
    """The event can never be recorded as sent (no id, no room, no kind)."""

    reason = "INVALID_EVENT"


class InvalidQuery(CallsError):
    reason = "INVALID_QUERY"


class InvalidPageToken(CallsError):
    reason = "INVALID_PAGE_TOKEN"


class CallNotFound(CallsError):
    reason = "CALL_NOT_FOUND"


class StoreUnavailable(CallsError):
    """The database could not be reached or failed: a retry may succeed."""

    reason = "STORE_UNAVAILABLE"
