"""The one encoder/decoder for AgentJobMetadata, shared by the dispatcher (which
writes it into a LiveKit dispatch), the gateway and the agent (which reads it
back from `ctx.job.metadata`). Keeping both directions here is what makes the
round trip safe: a field renamed on one side cannot silently vanish on the other.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata

# LiveKit refuses dispatch metadata above 512 KiB.
MAX_METADATA_BYTES = 512 * 1024
# Protobuf JSON spends at most this many bytes per byte of the binary encoding: a
# control character becomes a 6-byte \uXXXX escape, and a field's one tag byte
# becomes its quoted JSON name (the longest in AgentJobMetadata is under 32
# characters) or an enum value's name. `check_size` encodes only above this bound.
_JSON_BYTES_PER_BINARY_BYTE = 48
# Bump when a change would make old agents misread new metadata.
CURRENT_SCHEMA_VERSION = 1


class JobMetadataError(ValueError):
    """Metadata that cannot be used; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode(metadata: AgentJobMetadata) -> str:
    """Serialise as compact protobuf JSON, refusing what LiveKit would refuse."""
    if not metadata.schema_version:
        metadata = _with_schema_version(metadata)
    text = json_format.MessageToJson(metadata, indent=None, preserving_proto_field_name=False)
    size = len(text.encode())
    if size > MAX_METADATA_BYTES:
        raise JobMetadataError(
            "METADATA_TOO_LARGE",
            f"job metadata is {size} bytes serialised; LiveKit accepts at most {MAX_METADATA_BYTES}",
        )
    return text


def check_size(metadata: AgentJobMetadata) -> None:
    """Raises JobMetadataError METADATA_TOO_LARGE when `encode` would. Cheap for every
    persona of ordinary size: serialises only when the binary size cannot rule it out."""
    if metadata.ByteSize() * _JSON_BYTES_PER_BINARY_BYTE <= MAX_METADATA_BYTES:
        return
    encode(metadata)


def decode(text: str | None) -> AgentJobMetadata:
    """Parse job metadata, ignoring unknown fields so old agents survive new writers."""
    if not text or not text.strip():
        raise JobMetadataError("METADATA_EMPTY", "job metadata is empty")
    size = len(text.encode())
    if size > MAX_METADATA_BYTES:
        raise JobMetadataError(
            "METADATA_TOO_LARGE", f"job metadata is {size} bytes; at most {MAX_METADATA_BYTES} are accepted"
        )
    try:
        document = json.loads(text)
        _require_objects(document, AgentJobMetadata.DESCRIPTOR, "metadata")
        metadata = json_format.ParseDict(document, AgentJobMetadata(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise JobMetadataError("METADATA_MALFORMED", f"job metadata is not AgentJobMetadata JSON: {exc}") from exc
    if metadata.schema_version > CURRENT_SCHEMA_VERSION:
        raise JobMetadataError(
            "METADATA_SCHEMA_UNSUPPORTED",
            f"job metadata schema {metadata.schema_version} is newer than {CURRENT_SCHEMA_VERSION}",
        )
    if not metadata.HasField("persona"):
        raise JobMetadataError("METADATA_NO_PERSONA", "job metadata carries no persona")
    return metadata


def _with_schema_version(metadata: AgentJobMetadata) -> AgentJobMetadata:
    stamped = AgentJobMetadata()
    stamped.CopyFrom(metadata)
    stamped.schema_version = CURRENT_SCHEMA_VERSION
    return stamped


def _require_objects(value: Any, descriptor: Descriptor, path: str) -> None:
    """json_format, with ignore_unknown_fields, reads `"persona": "text"` as an empty
    Persona; a message field must be a JSON object (or null) to count as present."""
    if not isinstance(value, dict):
        raise ValueError(f"{path} must be a JSON object, not {type(value).__name__}")
    for field in descriptor.fields:
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        if field.message_type.full_name.startswith("google.protobuf."):
            continue  # well-known types (Struct extras) have their own JSON forms
        for key in (field.json_name, field.name):
            child = value.get(key)
            if child is None:
                continue
            children = child if field.is_repeated else [child]
            if not isinstance(children, list):
                raise ValueError(f"{path}.{key} must be a JSON array")
            for item in children:
                _require_objects(item, field.message_type, f"{path}.{key}")
