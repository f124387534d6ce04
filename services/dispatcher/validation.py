"""Request validation: everything that can be refused without asking LiveKit is
refused here, with a message that says which field and why."""

from __future__ import annotations

import unicodedata

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from services.common import job_metadata
from services.dispatcher.errors import InvalidRequest

MAX_ROOM_CHARS = 256
MAX_AGENT_NAME_CHARS = 128
MAX_DISPATCH_ID_CHARS = 128


def _has_control(text: str) -> bool:
    # isprintable() is False for every category C character (and for Z ones other than
    # the space), so a printable text, the usual case, needs no per-character look-up.
    return not text.isprintable() and any(unicodedata.category(ch).startswith("C") for ch in text)


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", metadata={"field": field})


def validate_room(room: str) -> None:
    if not room:
        raise _invalid("room", "required")
    if len(room) > MAX_ROOM_CHARS:
        raise _invalid("room", f"{len(room)} characters; at most {MAX_ROOM_CHARS}")
    if _has_control(room) or room != room.strip():
        raise _invalid("room", "must not contain control characters or leading/trailing whitespace")


def validate_agent_name(agent_name: str) -> None:
    if not agent_name:
        raise _invalid("agent_name", "required (the agent_name the worker registered with)")
    if len(agent_name) > MAX_AGENT_NAME_CHARS:
        raise _invalid("agent_name", f"{len(agent_name)} characters; at most {MAX_AGENT_NAME_CHARS}")
    if _has_control(agent_name) or any(ch.isspace() for ch in agent_name):
        raise _invalid("agent_name", "must not contain whitespace or control characters")


def validate_trunk_id(trunk_id: str) -> None:
    if not trunk_id:
        raise _invalid("trunk_id", "required")
    if len(trunk_id) > MAX_DISPATCH_ID_CHARS or _has_control(trunk_id) or trunk_id != trunk_id.strip():
        raise _invalid("trunk_id", "not a LiveKit SIP trunk id")


def validate_dispatch_id(dispatch_id: str) -> None:
    if not dispatch_id:
        raise _invalid("dispatch_id", "required")
    if len(dispatch_id) > MAX_DISPATCH_ID_CHARS or _has_control(dispatch_id) or dispatch_id != dispatch_id.strip():
        raise _invalid("dispatch_id", "not a LiveKit dispatch id")


def validate_dispatch(room: str, agent_name: str, metadata: AgentJobMetadata) -> str:
    """Validates a DispatchAgent request and returns the metadata as LiveKit will store it."""
    validate_room(room)
    validate_agent_name(agent_name)
    if metadata.call.room and metadata.call.room != room:
        # Metadata describing another room's call is a caller bug that would give this
        # room's agent the wrong facts: refuse it loudly.
        raise _invalid("metadata.call.room", f"{metadata.call.room!r} differs from room {room!r}")
    try:
        return job_metadata.encode(metadata)
    except job_metadata.JobMetadataError as exc:
        raise InvalidRequest(f"metadata: {exc}", reason=exc.reason, metadata={"field": "metadata"}) from exc
