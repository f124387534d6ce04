"""Domain errors of the dispatcher. Each carries a stable `reason` (the ErrorInfo
reason callers branch on); the servicer maps the classes to gRPC codes in one place,
so the logic never imports grpc."""

from __future__ import annotations

from services.common.errors import DomainError


class DispatchError(DomainError):
    reason = "DISPATCH_FAILED"


class InvalidRequest(DispatchError):
    """The request can never succeed as sent (nothing was sent to LiveKit)."""

    reason = "INVALID_REQUEST"


class RoomNotFound(DispatchError):
    reason = "ROOM_NOT_FOUND"


class DispatchNotFound(DispatchError):
    reason = "DISPATCH_NOT_FOUND"


class LiveKitRejectedCredentials(DispatchError):
    """LiveKit refused *our* API key/secret: an operator problem, not the caller's
    (hence never UNAUTHENTICATED, which is reserved for the caller's token)."""

    reason = "LIVEKIT_REJECTED_CREDENTIALS"


class LiveKitRejectedRequest(DispatchError):
    """LiveKit answered a definitive 4xx about the request (bad room name, refused room)."""

    reason = "LIVEKIT_REJECTED_REQUEST"


class LiveKitPrecondition(DispatchError):
    """LiveKit refuses in its current state (room refused, dispatch service missing)."""

    reason = "LIVEKIT_FAILED_PRECONDITION"


class LiveKitUnavailable(DispatchError):
    """LiveKit kept failing with 5xx/transport errors until the deadline: a retry may help."""

    reason = "LIVEKIT_UNAVAILABLE"


class LiveKitRateLimited(DispatchError):
    reason = "LIVEKIT_RATE_LIMITED"


class LiveKitInternal(DispatchError):
    """LiveKit answered something we cannot classify."""

    reason = "LIVEKIT_ERROR"


class DispatchInProgress(DispatchError):
    """Another request (maybe at another replica) holds the claim for this call and
    its dispatch did not appear before our deadline. Retrying later finds it."""

    reason = "DISPATCH_IN_PROGRESS"


class ClaimStoreUnavailable(DispatchError):
    """Redis (the cross-replica claim store) is unreachable. We refuse rather than
    create without a claim, because that could put two agents in the room."""

    reason = "CLAIM_STORE_UNAVAILABLE"


class NoAgentWorker(DispatchError):
    """No agent worker took the dispatch's job in time (none registered for the agent
    name, all busy, or its job failed). The dispatch was withdrawn so that a retry —
    LiveKit's redelivery of the webhook — dispatches afresh once a worker is back,
    instead of leaving the caller ringing on a dispatch nobody serves."""

    reason = "NO_AGENT_WORKER"


class TrunkNotFound(DispatchError):
    reason = "TRUNK_NOT_FOUND"
