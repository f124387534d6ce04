"""From `ctx.job.metadata` to the persona and call facts this job serves.

Parsing is done by the one shared codec (services.common.job_metadata); this
module only decides what to do when it fails: use the built-in default persona
and say why. Nothing here raises — an unusable dispatch still gets its call
answered.

The call facts are checked again here, whoever wrote the metadata: DispatcherService
takes metadata from any internal caller, not only the gateway, and the SIP
participant's attributes are the caller's own text. A fact of the wrong shape
(services.common.call_facts) is dropped, logged and counted; the persona still speaks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from agent.metrics import count_dropped_fact
from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.campaign_pb2 import CallAction, CampaignSelection
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.common import call_facts
from services.common.call_actions import action_problem
from services.common.default_persona import default_persona
from services.common.job_metadata import JobMetadataError, decode
from services.common.livekit_names import SipAttribute
from services.common.log_safety import safe_trace_id

logger = logging.getLogger(__name__)

# LiveKit's SIP participant attributes (docs/architecture.md, "SIP participant attributes") → CallFacts fields.
SIP_ATTRIBUTE_FIELDS: Mapping[str, str] = {
    SipAttribute.TRUNK_PHONE_NUMBER: "dialed_number",
    SipAttribute.PHONE_NUMBER: "caller_number",
    SipAttribute.CALL_ID: "sip_call_id",
    SipAttribute.TRUNK_ID: "sip_trunk_id",
}


@dataclass(frozen=True)
class JobSetup:
    persona: Persona
    source: PersonaSource.ValueType
    call: CallFacts
    trace_id: str
    # Why the default persona is used instead of the dispatched one; empty when the
    # metadata was usable. A stable code from JobMetadataError.reason.
    fallback_reason: str = ""
    # A campaign's action (closed-hours message, transfer) instead of a conversation.
    action: CallAction | None = None
    # Which campaign variant the call got: a persona change mid-call keeps to it.
    selection: CampaignSelection | None = None

    @property
    def source_name(self) -> str:
        return PersonaSource.Name(self.source)


def setup_from_metadata(text: str | None, *, room_name: str = "") -> JobSetup:
    """Parse job metadata, falling back to the default persona with a warning."""
    try:
        metadata = decode(text)
    except JobMetadataError as exc:
        reason, detail = exc.reason, str(exc)
    except Exception as exc:  # noqa: BLE001 - the contract is "no crash path from metadata"
        reason, detail = "METADATA_UNREADABLE", f"{type(exc).__name__}: {exc}"
    else:
        if _is_empty(metadata.persona):
            # json_format accepts `"persona": "<a string>"` as an empty Persona (it
            # iterates the string's characters as ignored keys): nothing to speak with.
            reason, detail = "PERSONA_EMPTY", "job metadata carries a persona with no text at all"
        else:
            return _setup(metadata, room_name)
    room = _checked_facts(CallFacts(room=room_name), "the job's room").room
    logger.warning(
        "job metadata unusable (%s); answering with the default persona: %s",
        reason,
        detail,
        extra={"reason": reason, "room": room},
    )
    return JobSetup(
        persona=default_persona(),
        source=PersonaSource.PERSONA_SOURCE_DEFAULT,
        call=CallFacts(room=room),
        trace_id="",
        fallback_reason=reason,
    )


def _setup(metadata: AgentJobMetadata, room_name: str) -> JobSetup:
    raw = CallFacts()
    raw.CopyFrom(metadata.call)
    if room_name:
        raw.room = room_name  # LiveKit's own word for where this job runs beats the metadata's
    call = _checked_facts(raw, "job metadata")
    source = metadata.persona_source or PersonaSource.PERSONA_SOURCE_UNSPECIFIED
    # Logged and forwarded, never spoken: escaped and bounded like any trace id.
    trace_id = safe_trace_id(metadata.trace_id) if metadata.trace_id else ""
    return JobSetup(
        persona=metadata.persona,
        source=source,
        call=call,
        trace_id=trace_id,
        action=_usable_action(metadata),
        selection=metadata.selection if metadata.HasField("selection") else None,
    )


def _usable_action(metadata: AgentJobMetadata) -> CallAction | None:
    """The metadata's call action if it can be carried out as it is. An unusable one
    is dropped and the call becomes a conversation with the persona: a caller
    talking to an agent beats a transfer to a target nobody checked."""
    if not metadata.HasField("action"):
        return None
    problem = action_problem(metadata.action)
    if problem is None:
        return metadata.action
    logger.warning(
        "job metadata carries an unusable call action (%s); answering with the persona instead",
        problem,
        extra={"reason": "ACTION_UNUSABLE", "room": metadata.call.room},
    )
    return None


def _checked_facts(call: CallFacts, where: str) -> CallFacts:
    clean, refused = call_facts.checked(call)
    call_facts.report(refused, where=where, count=count_dropped_fact)
    return clean


def _is_empty(persona: Persona) -> bool:
    return not (
        persona.personality.strip() or persona.conversation_structure.strip() or persona.welcome_message.strip()
    )


def fill_call_facts(call: CallFacts, attributes: Mapping[str, str]) -> CallFacts:
    """Complete missing call facts from the SIP participant's attributes.

    Metadata wins where it has a value: PersonaService normalised the dialed
    number (E.164) and the gateway copied that form into the metadata; the
    transcript should show the number the persona was chosen for. Attributes
    only fill the gaps, and only with values of the right shape.
    """
    from_attributes = CallFacts()
    for attribute, field in SIP_ATTRIBUTE_FIELDS.items():
        value = attributes.get(attribute, "")
        if value and not getattr(call, field):
            setattr(from_attributes, field, value)
    from_attributes = _checked_facts(from_attributes, "SIP participant attributes")
    filled = CallFacts()
    filled.CopyFrom(call)
    for field in SIP_ATTRIBUTE_FIELDS.values():
        if getattr(from_attributes, field):
            setattr(filled, field, getattr(from_attributes, field))
    return filled
