"""Job metadata → persona and call facts, through the one shared codec."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from agent.job_setup import fill_call_facts, setup_from_metadata
from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.persona_pb2 import PersonaSource
from services.common.default_persona import default_persona
from services.common.job_metadata import MAX_METADATA_BYTES
from tests.agent.personas import CALLER, DIALED, acme_persona, job_metadata


def test_dispatcher_metadata_round_trips_through_the_agent_parser() -> None:
    persona = acme_persona()
    setup = setup_from_metadata(job_metadata(persona), room_name="call-room")
    assert setup.fallback_reason == ""
    assert setup.persona == persona
    assert setup.source == PersonaSource.PERSONA_SOURCE_CRM
    assert setup.trace_id == "EV_trace_1"
    assert (setup.call.dialed_number, setup.call.caller_number, setup.call.sip_call_id) == (DIALED, CALLER, "SCL_1")


def test_unknown_fields_from_newer_writers_are_ignored() -> None:
    text = job_metadata().rstrip("}") + ', "someFutureField": {"x": 1}}'
    assert setup_from_metadata(text).persona.persona_id == "crm-42"


def test_the_jobs_room_wins_over_the_metadatas() -> None:
    # LiveKit says where the job runs; metadata is whatever its writer put there.
    assert setup_from_metadata(job_metadata(room=""), room_name="job-room").call.room == "job-room"
    assert setup_from_metadata(job_metadata(room="meta-room"), room_name="job-room").call.room == "job-room"
    assert setup_from_metadata(job_metadata(room="meta-room")).call.room == "meta-room"


def test_oversize_metadata_falls_back() -> None:
    # Our encoder refuses this; another writer might not, so build it by hand.
    text = json_format.MessageToJson(AgentJobMetadata(persona=acme_persona(personality="x" * MAX_METADATA_BYTES)))
    setup = setup_from_metadata(text)
    assert setup.fallback_reason == "METADATA_TOO_LARGE"
    assert setup.persona == default_persona()
    assert setup.source == PersonaSource.PERSONA_SOURCE_DEFAULT


@pytest.mark.parametrize("text", [None, "", "   ", "null", '"a string"', "{}", "\x00\xff"])
def test_garbage_never_raises(text: str | None) -> None:
    setup = setup_from_metadata(text)
    assert setup.fallback_reason
    assert setup.persona.persona_id == default_persona().persona_id


def test_sip_attributes_fill_only_missing_call_facts() -> None:
    attributes = {
        "sip.trunkPhoneNumber": "4155550100",  # un-normalised: metadata's E.164 must win
        "sip.phoneNumber": "+14155550111",
        "sip.callID": "SCL_attr",
        "sip.trunkID": "ST_trunk",
        "sip.callStatus": "active",
    }
    facts = fill_call_facts(CallFacts(dialed_number=DIALED, caller_number=""), attributes)
    assert facts.dialed_number == DIALED
    assert facts.caller_number == "+14155550111"
    assert facts.sip_call_id == "SCL_attr"
    assert facts.sip_trunk_id == "ST_trunk"


def test_hidden_numbers_stay_empty() -> None:
    facts = fill_call_facts(CallFacts(), {"sip.callID": "SCL_2"})
    assert (facts.caller_number, facts.dialed_number, facts.sip_call_id) == ("", "", "SCL_2")
