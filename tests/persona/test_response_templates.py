"""GetPersona's response templates (servicer.ResponseTemplates): a reused template must
answer exactly what building the response afresh answers, for every call."""

from __future__ import annotations

from friday.persona.v1.campaign_pb2 import CampaignSelection, SelectionRule
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import GetPersonaResponse
from services.persona.lookup import Resolution
from services.persona.servicer import ResponseTemplates

NUMBER = "+14155551000"


def _persona(version: str) -> Persona:
    return Persona(persona_id=NUMBER, display_name="Maya", personality="front desk", version=version)


def _fresh(found: Resolution) -> GetPersonaResponse:
    return GetPersonaResponse(
        persona=found.persona,
        source=found.source,
        normalized_number=found.normalized_number,
        age_seconds=found.age_seconds,
        default_reason=found.default_reason,
        selection=found.selection,
        action=found.action,
    )


def test_a_reused_template_answers_this_calls_age_and_leaves_earlier_answers_alone() -> None:
    templates = ResponseTemplates()
    persona = _persona("v1")
    first = templates.response(Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 1.5))
    second_found = Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 7.25)
    second = templates.response(second_found)
    assert second == _fresh(second_found)
    assert second is not first
    assert first.age_seconds == 1.5


def test_a_new_persona_object_is_answered_not_the_templates() -> None:
    templates = ResponseTemplates()
    templates.response(Resolution(_persona("v1"), PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 1.0))
    changed = Resolution(_persona("v2"), PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 0.0)
    assert templates.response(changed).persona.version == "v2"
    # Equal content in a new object (a Redis cache decodes one per read) is answered too.
    again = Resolution(_persona("v2"), PersonaSource.PERSONA_SOURCE_CACHE, NUMBER, 3.0)
    assert templates.response(again) == _fresh(again)


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
            assert templates.response(found) == _fresh(found)
    assert len(templates) == len(cases)


def test_templates_are_bounded() -> None:
    templates = ResponseTemplates(max_entries=2)
    persona = _persona("v1")
    for i in range(5):
        templates.response(Resolution(persona, PersonaSource.PERSONA_SOURCE_CACHE, f"+1415555100{i}", 0.0))
    assert len(templates) == 2
