"""GetPersona's response templates (servicer.ResponseTemplates): a reused template must
answer exactly what building the response afresh answers, for every call, byte for
byte what the protobuf runtime serializes for it."""

from __future__ import annotations

from friday.persona.v1.campaign_pb2 import CallAction, CallActionKind, CampaignSelection, SelectionRule
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason, GetPersonaResponse
from services.persona.lookup import Resolution
from services.persona.servicer import ResponseTemplates

NUMBER = "+14155551000"


def _persona(version: str) -> Persona:
    return Persona(persona_id=NUMBER, display_name="Maya", personality="front desk", version=version)


def _fresh(found: Resolution) -> bytes:
    return GetPersonaResponse(
        persona=found.persona,
        source=found.source,
        normalized_number=found.normalized_number,
        age_seconds=found.age_seconds,
        default_reason=found.default_reason,
        selection=found.selection,
        action=found.action,
    ).SerializeToString()


def test_a_reused_template_answers_this_calls_age_and_leaves_earlier_answers_alone() -> None:
    templates = ResponseTemplates()
    persona = _persona("v1")
    first = templates.encoded(Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 1.5))
    second_found = Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 7.25)
    second = templates.encoded(second_found)
    assert second == _fresh(second_found)
    assert GetPersonaResponse.FromString(first).age_seconds == 1.5


def test_a_new_persona_object_is_answered_not_the_templates() -> None:
    templates = ResponseTemplates()
    templates.encoded(Resolution(_persona("v1"), PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 1.0))
    changed = Resolution(_persona("v2"), PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 0.0)
    assert GetPersonaResponse.FromString(templates.encoded(changed)).persona.version == "v2"
    # Equal content in a new object (a Redis cache decodes one per read) is answered too.
    again = Resolution(_persona("v2"), PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 3.0)
    assert templates.encoded(again) == _fresh(again)


def test_other_fields_select_their_own_template() -> None:
    templates = ResponseTemplates()
    persona = _persona("v1")
    cases = [
        Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 1.0),
        Resolution(persona, PersonaSource.PERSONA_SOURCE_STALE_CACHE, NUMBER, 400.0),
        Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, "+14155552000", 1.0),
        Resolution(
            persona,
            PersonaSource.PERSONA_SOURCE_CACHE,
            NUMBER,
            2.0,
            selection=CampaignSelection(
                campaign_id="c", campaign_version="1", variant_id="a", rule=SelectionRule.SELECTION_RULE_WEIGHTED
            ),
        ),
        Resolution(
            persona,
            PersonaSource.PERSONA_SOURCE_CACHE,
            NUMBER,
            2.0,
            selection=CampaignSelection(
                campaign_id="c", campaign_version="1", variant_id="b", rule=SelectionRule.SELECTION_RULE_WEIGHTED
            ),
        ),
    ]
    for _ in range(2):  # the second round reuses the templates of the first
        for found in cases:
            assert templates.encoded(found) == _fresh(found)
    assert len(templates) == len(cases)


def test_templates_are_bounded() -> None:
    templates = ResponseTemplates(max_entries=2)
    persona = _persona("v1")
    for i in range(5):
        templates.encoded(Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, f"+1415555100{i}", 0.0))
    assert len(templates) == 2


def test_ages_the_runtime_writes_or_leaves_out_are_answered_alike() -> None:
    """A zero age is left out of the wire form, a negative zero or NaN is not: the
    template's halves must agree with the runtime on each, reused or not."""
    templates = ResponseTemplates()
    persona = _persona("v1")
    for _ in range(2):
        for age in (0.0, -0.0, float("nan"), 1e-300, 86_400.0):
            found = Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, age)
            assert templates.encoded(found) == _fresh(found)
    assert len(templates) == 1


def test_an_answer_with_an_action_and_a_default_reason_is_answered_exactly() -> None:
    templates = ResponseTemplates()
    action = CallAction(
        kind=CallActionKind.CALL_ACTION_KIND_TRANSFER, message="One moment.", transfer_to="+14155550100"
    )
    found = Resolution(
        _persona("v1"),
        PersonaSource.PERSONA_SOURCE_DEFAULT,
        NUMBER,
        3.5,
        default_reason=DefaultReason.DEFAULT_REASON_NO_VARIANT,
        selection=CampaignSelection(campaign_id="c", campaign_version="1"),
        action=action,
    )
    for _ in range(2):
        assert templates.encoded(found) == _fresh(found)
