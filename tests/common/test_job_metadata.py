"""The shared AgentJobMetadata codec: what the dispatcher writes, the agent reads back."""

from __future__ import annotations

import pytest

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.common import job_metadata
from services.common.default_persona import default_persona


def _metadata(**persona_fields: str) -> AgentJobMetadata:
    return AgentJobMetadata(
        persona=Persona(persona_id="p1", display_name="Maya", **persona_fields),
        persona_source=PersonaSource.PERSONA_SOURCE_CRM,
        call=CallFacts(dialed_number="+918655701159", caller_number="+14155550100", room="call-1"),
        trace_id="EV_1",
    )


def test_round_trip_keeps_every_field_and_stamps_the_schema_version() -> None:
    original = _metadata(personality="Warm", welcome_message="Hi {{caller_number}}")
    original.persona.prompt_variables["clinic"] = "Acme"
    original.persona.extras.update({"crm_only": {"nested": [1, "two"]}})

    decoded = job_metadata.decode(job_metadata.encode(original))

    assert decoded.schema_version == job_metadata.CURRENT_SCHEMA_VERSION
    decoded.schema_version = 0
    assert decoded == original


def test_encoding_is_camel_case_protobuf_json() -> None:
    text = job_metadata.encode(_metadata())
    assert '"displayName":"Maya"' in text.replace(" ", "")
    assert '"personaSource":"PERSONA_SOURCE_CRM"' in text.replace(" ", "")


def test_unknown_fields_from_newer_writers_are_ignored() -> None:
    text = job_metadata.encode(_metadata())[:-1] + ', "addedInV2": {"x": 1}}'
    assert job_metadata.decode(text).persona.display_name == "Maya"


def test_metadata_over_livekit_limit_is_refused_on_both_sides() -> None:
    huge = _metadata(personality="x" * (job_metadata.MAX_METADATA_BYTES + 1))
    with pytest.raises(job_metadata.JobMetadataError) as refused:
        job_metadata.encode(huge)
    assert refused.value.reason == "METADATA_TOO_LARGE"
    with pytest.raises(job_metadata.JobMetadataError) as too_big:
        job_metadata.decode('{"persona": {"personality": "' + "x" * job_metadata.MAX_METADATA_BYTES + '"}}')
    assert too_big.value.reason == "METADATA_TOO_LARGE"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "METADATA_EMPTY"),
        ("   ", "METADATA_EMPTY"),
        ("{not json", "METADATA_MALFORMED"),
        ("[1, 2]", "METADATA_MALFORMED"),
        ('{"persona": "a string"}', "METADATA_MALFORMED"),
        ('{"persona": {"voice": 3}}', "METADATA_MALFORMED"),
        ('{"persona": {"displayName": 5}}', "METADATA_MALFORMED"),
        ('{"call": {"room": "r"}}', "METADATA_NO_PERSONA"),
        ('{"schemaVersion": 99, "persona": {}}', "METADATA_SCHEMA_UNSUPPORTED"),
    ],
)
def test_unusable_metadata_names_its_reason(text: str, reason: str) -> None:
    with pytest.raises(job_metadata.JobMetadataError) as error:
        job_metadata.decode(text)
    assert error.value.reason == reason


def test_default_persona_is_a_fresh_copy() -> None:
    first = default_persona()
    first.display_name = "changed"
    assert default_persona().display_name == "Friday"


def _worst_cases() -> list[AgentJobMetadata]:
    """Metadata whose JSON is as large as possible next to its binary size."""
    escapes = _metadata(personality="\x01" * 1000, welcome_message="\x1f" * 1000)
    enums_only = AgentJobMetadata(persona_source=PersonaSource.PERSONA_SOURCE_STATIC_FILE)
    short_fields = _metadata(personality="a", closing_message="b", language="c")
    many_variables = _metadata()
    for i in range(500):
        many_variables.persona.prompt_variables[f"{i}"] = "\x02"
    nested_extras = _metadata()
    nested_extras.persona.extras.update({f"k{i}": {"n": None, "l": [1.0e308, True, {}]} for i in range(200)})
    return [escapes, enums_only, short_fields, many_variables, nested_extras, AgentJobMetadata()]


@pytest.mark.parametrize("metadata", _worst_cases())
def test_size_check_bound_holds_for_json_heavy_metadata(metadata: AgentJobMetadata) -> None:
    # check_size skips the encode when ByteSize x factor fits: that must bound the real JSON.
    encoded = len(job_metadata.encode(metadata).encode())
    assert encoded <= max(metadata.ByteSize(), 1) * job_metadata._JSON_BYTES_PER_BINARY_BYTE


def test_size_check_refuses_what_encode_refuses_and_passes_what_it_accepts() -> None:
    just_under = _metadata(personality="x" * (job_metadata.MAX_METADATA_BYTES - 2048))
    job_metadata.check_size(just_under)
    job_metadata.encode(just_under)
    over_by_escapes = _metadata(personality="\x01" * (job_metadata.MAX_METADATA_BYTES // 6 + 1))
    with pytest.raises(job_metadata.JobMetadataError) as refused:
        job_metadata.check_size(over_by_escapes)
    assert refused.value.reason == "METADATA_TOO_LARGE"
