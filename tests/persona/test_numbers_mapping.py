"""Number parsing/formatting and CRM JSON mapping (pure logic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from friday.persona.v1.persona_pb2 import GreetingMode, Persona
from services.persona.mapping import MAX_EXTRAS_DEPTH, MalformedPersona, persona_from_json
from services.persona.numbers import CrmNumberFormat, InvalidPhoneNumber, parse_dialed_number
from services.persona.persona_file import EXAMPLE_FILE_NAME, PersonaFileSource


@pytest.mark.parametrize(
    "text", ["+918655701159", "08655701159", "8655701159", "+91 86557-01159", " +91 (865) 570 1159 "]
)
def test_indian_forms_share_one_e164_key(text: str) -> None:
    number = parse_dialed_number(text, "IN")
    assert number.e164 == "+918655701159"
    assert number.national == "8655701159"


def test_default_region_reads_numbers_without_country_code() -> None:
    assert parse_dialed_number("(415) 555-0100", "US").e164 == "+14155550100"
    assert parse_dialed_number("+14155550100", "IN").e164 == "+14155550100"  # explicit country wins


@pytest.mark.parametrize(
    ("fmt", "segment"),
    [
        (CrmNumberFormat.NATIONAL, "8655701159"),
        (CrmNumberFormat.E164, "%2B918655701159"),
        (CrmNumberFormat.AS_RECEIVED, "%2B91%20865-570-1159"),
    ],
)
def test_crm_segment_formats_are_percent_encoded(fmt: CrmNumberFormat, segment: str) -> None:
    assert parse_dialed_number("+91 865-570-1159", "IN").crm_segment(fmt) == segment


@pytest.mark.parametrize(
    "text", ["", "   ", "../../admin", "abc", "1-800-FLOWERS", "12", "+1555", "8655701159/../x", "+91%2F865", "9" * 40]
)
def test_not_phone_numbers(text: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        parse_dialed_number(text, "IN")


@pytest.mark.parametrize(
    ("text", "what_was_wrong"),
    [
        ("", "the dialed number is empty"),
        ("+1", "'+1' has 1 digit, too few for a phone number"),
        ("+", "'+' is not a phone number: it has no digits"),
        ("1-800-FLOWERS", "'1-800-FLOWERS' is not a phone number: only digits, spaces,"),
        ("+99912345678", "'+99912345678' does not start with a country calling code after the '+'"),
        ("+1234567890123456789", "has 19 digits, too many for a phone number"),
        ("12", "'12' has the wrong number of digits for a phone number (read as +9112)"),
        ("9" * 40, "over 32 characters"),
    ],
)
def test_a_refusal_says_what_was_wrong_and_shows_a_valid_form(text: str, what_was_wrong: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as refused:
        parse_dialed_number(text, "IN")
    message = str(refused.value)
    assert what_was_wrong in message
    assert message.endswith("; write it as '+', the country code and the number, e.g. +918655701159")
    # phonenumbers' own texts describe its parser, not the caller's mistake
    assert "did not seem" not in message and "Could not interpret" not in message


def test_mapping_accepts_original_field_names_and_keeps_extras() -> None:
    persona = persona_from_json(
        {
            "data": {
                "id": 17,
                "persona_name": "Asha",
                "personality": "Warm.",
                "conversationStructure": "Steps.",
                "welcome_message": "Hello!",
                "closing_message": "Bye!",
                "voice": {"provider": "cartesia", "voiceId": "v1"},
                "promptVariables": {"city": "Mumbai", "n": 3},
                "greetingMode": "generated",
                "crm_owner": "ops",
                "tags": ["a", "b"],
            }
        }
    )
    assert (persona.persona_id, persona.display_name, persona.personality) == ("17", "Asha", "Warm.")
    assert persona.conversation_structure == "Steps." and persona.welcome_message == "Hello!"
    assert (persona.voice.provider, persona.voice.voice_id) == ("cartesia", "v1")
    assert dict(persona.prompt_variables) == {"city": "Mumbai", "n": "3"}
    assert persona.greeting_mode == GreetingMode.GREETING_MODE_GENERATED
    assert persona.extras["crm_owner"] == "ops" and list(persona.extras["tags"]) == ["a", "b"]


def test_mapping_snake_and_camel_case() -> None:
    camel = persona_from_json({"personaName": "A", "welcomeMessage": "Hi", "closingMessage": "Bye"})
    snake = persona_from_json({"persona_name": "A", "conversation_structure": "S"})
    assert (camel.display_name, camel.welcome_message, camel.closing_message) == ("A", "Hi", "Bye")
    assert snake.conversation_structure == "S"


@pytest.mark.parametrize(
    "body",
    [[], "text", 5, None, {}, {"data": None}, {"persona_name": "only a name"}, {"personality": {"nested": 1}}],
)
def test_mapping_rejects_unusable_records(body: object) -> None:
    with pytest.raises(MalformedPersona):
        persona_from_json(body)


def test_extras_nesting_is_bounded_so_every_receiver_can_decode_the_persona() -> None:
    def nested(depth: int) -> object:
        value: object = 1
        for _ in range(depth):
            value = {"a": value}
        return value

    deepest = persona_from_json({"personality": "x", "deep": nested(MAX_EXTRAS_DEPTH - 1)})
    # the limit exists for this: a protobuf parser must read back what we produce
    assert Persona.FromString(deepest.SerializeToString()) == deepest
    with pytest.raises(MalformedPersona):
        persona_from_json({"personality": "x", "deep": nested(MAX_EXTRAS_DEPTH)})
    with pytest.raises(MalformedPersona):  # deeper than Python's stack: refused, not a RecursionError
        persona_from_json({"personality": "x", "deep": nested(100_000)})


def test_example_file_ships_a_default_and_the_original_number() -> None:
    source = PersonaFileSource.example(default_region="IN")
    assert "+918655701159" in source.numbers and len(source.numbers) == 4
    default = source.default_persona()
    assert default is not None and default.persona_id == "default" and default.welcome_message
    path = Path(__file__).parents[2] / "services" / "persona" / EXAMPLE_FILE_NAME
    assert set(json.loads(path.read_text())) == {"default", "personas"}


# How carriers write the dialed number in the INVITE's To header (LiveKit passes it on
# as sip.trunkPhoneNumber untouched), and what PersonaService makes of it. Ambiguity is
# decided by phonenumbers' validity rules: the default region's reading first, then an
# international prefix, then the digits as an international number without its "+".
@pytest.mark.parametrize(
    ("sent", "region", "e164"),
    [
        ("+918655701159", "IN", "+918655701159"),  # E.164, as LiveKit's own examples
        ("8655701159", "IN", "+918655701159"),  # national significant number
        ("08655701159", "IN", "+918655701159"),  # with the national trunk prefix
        ("918655701159", "IN", "+918655701159"),  # country code without "+"
        ("14155550100", "IN", "+14155550100"),  # not valid in IN, valid NANP without "+"
        ("442079460958", "IN", "+442079460958"),  # not valid in IN, valid UK without "+"
        ("00442079460958", "IN", "+442079460958"),  # IN's own international prefix
        ("00442079460958", "US", "+442079460958"),  # "00" also where it is not the local prefix
        ("011442079460958", "IN", "+442079460958"),  # NANP's international prefix
        ("0044 20 7946 0958", "IN", "+442079460958"),  # with spaces
        ("4155550100", "US", "+14155550100"),  # a national NANP number in a US deployment
        ("14155550100", "US", "+14155550100"),  # NANP with its country code
        # Valid in the default region, so read there: an Indian deployment needs the
        # carrier to send NANP numbers with their country code.
        ("4155550100", "IN", "+914155550100"),
    ],
)
def test_carrier_number_forms(sent: str, region: str, e164: str) -> None:
    assert parse_dialed_number(sent, region).e164 == e164


@pytest.mark.parametrize("sent", ["004414155550100", "0011", "000"])
def test_carrier_forms_with_no_possible_reading_are_refused(sent: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        parse_dialed_number(sent, "IN")
