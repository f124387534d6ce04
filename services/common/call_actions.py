"""The shapes a call action may take, checked in one place: by PersonaService when
a campaign arrives from the CRM, and again by the agent, which trusts no job
metadata (DispatcherService accepts metadata from internal callers too)."""

from __future__ import annotations

import re

import phonenumbers

from friday.persona.v1.campaign_pb2 import CallAction, CallActionKind

MAX_ACTION_MESSAGE_LENGTH = 2_000
MAX_SIP_URI_LENGTH = 256
# sip:/sips: URI with a user part and a host — besides E.164 numbers, what
# TransferSIPParticipant takes. No spaces or control characters anywhere.
_SIP_URI = re.compile(r"^sips?:[A-Za-z0-9._~%!$&'()*+,;=:-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?(;[\x21-\x7e]*)?$")


def normalized_transfer_target(text: str) -> str | None:
    """`text` as a transfer target (E.164 number or SIP URI), or None when it is neither."""
    if text.startswith(("sip:", "sips:")):
        return text if len(text) <= MAX_SIP_URI_LENGTH and _SIP_URI.match(text) else None
    if not text.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def action_problem(action: CallAction) -> str | None:
    """What is wrong with `action`, or None when it can be carried out as it is."""
    if action.kind not in (CallActionKind.CALL_ACTION_KIND_REJECT, CallActionKind.CALL_ACTION_KIND_TRANSFER):
        return f"unknown action kind {action.kind}"
    if not action.message.strip():
        return "the action has no message for the caller"
    if len(action.message) > MAX_ACTION_MESSAGE_LENGTH:
        return f"the action message is over {MAX_ACTION_MESSAGE_LENGTH} characters"
    if action.kind == CallActionKind.CALL_ACTION_KIND_REJECT:
        return "a reject action has no transfer target" if action.transfer_to else None
    if normalized_transfer_target(action.transfer_to) != action.transfer_to:
        return f"transfer target {action.transfer_to[:64]!r} is not an E.164 number or a sip: URI"
    return None
