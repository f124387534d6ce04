"""A source's JSON answer for one number → a `Persona` or a `Campaign`: the one
entry point the CRM client and the persona file share, so both accept the same
documents."""

from __future__ import annotations

from typing import Any

from services.persona.campaign_mapping import campaign_from_json, is_campaign_document
from services.persona.mapping import persona_from_json, unwrap
from services.persona.sources import SourceAnswer


def answer_from_json(body: Any, *, persona_id: str = "") -> SourceAnswer:
    """Raises MalformedPersona (MalformedCampaign for a campaign) when unusable."""
    record = unwrap(body)
    if is_campaign_document(record):
        return campaign_from_json(record)
    return persona_from_json(record, persona_id=persona_id)
