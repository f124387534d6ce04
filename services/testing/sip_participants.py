"""SIP participants as livekit/sip puts them into a room: identity, name and `sip.*` attributes
at the moment they join (livekit/protocol `sip/sip.go` EvaluateDispatchRule and `rpc/sip.go`
NewCreateSIPParticipantRequest; livekit/sip `pkg/sip/inbound.go`, `outbound.go`, `types.go`).

Inbound (a caller dialed one of our numbers), at join:

* always `sip.callID` (LiveKit's `SCL_…`), `sip.trunkID`, `sip.ruleID` (the dispatch rule that
  matched), `sip.callIDFull` (the INVITE's Call-ID header), `sip.callTag` (its From tag) and
  `sip.callStatus` `ringing` — `active` instead when the rule asks the caller for a PIN;
* unless the rule hides numbers: `sip.phoneNumber` (the From user: the caller),
  `sip.hostname` (the From host: the carrier) and `sip.trunkPhoneNumber` (the To user: the
  number dialed, exactly as the carrier wrote it — `+14155550100`, `14155550100`,
  `4155550100`, `004414155550100` all occur; only trunk matching normalises it);
* identity `sip_<caller as sent>`, name `Phone <caller>`; with hidden numbers the three number
  attributes are all absent, the identity is `sip_` + the first 8 bytes of SHA-256(caller) in
  hex, and the name shows the caller's last 4 digits;
* INVITE headers: `sip.h.<lowercased name>` for X- headers when the trunk includes them,
  a trunk's own `headers_to_attributes` mapping, and livekit/sip's fixed mapping of known
  carrier headers (`X-Twilio-CallSid` → `sip.twilio.callSid`, …), always;
* the rule's own attributes, under all of the above.

Outbound (our call out, a transfer leg), at join: `sip.callID`, `sip.trunkID`,
`sip.callStatus` `dialing`, unless hidden `sip.phoneNumber` (the number called),
`sip.hostname` (the trunk's address) and `sip.trunkPhoneNumber` (our number it calls from);
no `sip.ruleID`, no `sip.callIDFull`/`sip.callTag` yet (they come once the INVITE is sent);
identity `sip_<number called>` even when hidden.

Not modelled: later attribute changes (`callStatus` → `active`/`hangup`, the outbound leg's
headers), participant metadata, and which trunk or rule matches a call.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from livekit.protocol.models import ParticipantInfo, ParticipantPermission

from services.common.livekit_names import SipAttribute

from .livekit_ids import PARTICIPANT_PREFIX, SIP_CALL_PREFIX, guid

# A carrier's address as the From host (TEST-NET-3: documentation only).
CARRIER_HOST = "203.0.113.5"
OUTBOUND_TRUNK_ADDRESS = "sip.carrier.example"
# livekit/sip pkg/sip/participant.go headerToAttr: mapped whenever the INVITE carries them.
CARRIER_HEADER_ATTRIBUTES = {
    "X-Twilio-AccountSid": "sip.twilio.accountSid",
    "X-Twilio-CallSid": "sip.twilio.callSid",
    "X-call_leg_id": "sip.telnyx.callLegID",
    "X-call_session_id": "sip.telnyx.callSessionID",
    "X-Amzn-ConnectContactId": "sip.amazon.contactId",
    "X-Amzn-ConnectInitialContactId": "sip.amazon.initialContactId",
    "X-Amzn-SourceAccount": "sip.amazon.sourceAccount",
    "X-Amzn-SourceArn": "sip.amazon.sourceArn",
    "X-Amzn-TargetArn": "sip.amazon.targetArn",
    "X-Lk-Test-Id": "lktest.id",
}


def hidden_identity(caller: str) -> str:
    """The identity of a caller whose rule hides numbers."""
    return "sip_" + hashlib.sha256(caller.encode()).digest()[:8].hex()


def inbound(
    *,
    dialed_number: str | None,
    caller_number: str = "+14155550100",
    hide_numbers: bool = False,
    call_id: str | None = None,
    trunk_id: str = "ST_test",
    rule_id: str = "SDR_test",
    hostname: str = CARRIER_HOST,
    sip_call_id: str | None = None,
    call_tag: str | None = None,
    call_status: str = "ringing",
    x_headers: Mapping[str, str] | None = None,
    include_headers: bool = False,
    headers_to_attributes: Mapping[str, str] | None = None,
    rule_attributes: Mapping[str, str] | None = None,
    identity: str | None = None,
    joined_at: int = 0,
) -> ParticipantInfo:
    """A caller's leg. `dialed_number` goes into `sip.trunkPhoneNumber` verbatim; None only
    with `hide_numbers`, which leaves out every number attribute."""
    if dialed_number is None and not hide_numbers:
        raise ValueError("a dialed number is absent only when the rule hides numbers: pass hide_numbers=True")
    attrs = dict(rule_attributes or {})
    attrs[SipAttribute.CALL_ID] = call_id or guid(SIP_CALL_PREFIX)
    attrs[SipAttribute.TRUNK_ID] = trunk_id
    if hide_numbers:
        who = hidden_identity(caller_number)
        name = "Phone " + caller_number[-(4 if len(caller_number) > 4 else 1) :]
    else:
        who, name = "sip_" + caller_number, "Phone " + caller_number
        attrs[SipAttribute.PHONE_NUMBER] = caller_number
        attrs[SipAttribute.HOSTNAME] = hostname
        attrs[SipAttribute.TRUNK_PHONE_NUMBER] = dialed_number or ""
    attrs[SipAttribute.RULE_ID] = rule_id
    headers = dict(x_headers or {})
    if include_headers:
        attrs.update(
            {SipAttribute.HEADER_PREFIX + h.lower(): v for h, v in headers.items() if h.lower().startswith("x-")}
        )
    attrs.update({CARRIER_HEADER_ATTRIBUTES[h]: v for h, v in headers.items() if h in CARRIER_HEADER_ATTRIBUTES})
    attrs.update({attr: headers[h] for h, attr in (headers_to_attributes or {}).items() if h in headers})
    attrs[SipAttribute.CALL_TAG] = call_tag or secrets.token_hex(5)
    attrs[SipAttribute.CALL_ID_FULL] = sip_call_id or f"{secrets.token_hex(16)}@{hostname}"
    attrs[SipAttribute.CALL_STATUS] = call_status
    return participant_info(identity or who, name, joined_at, attrs=attrs)


def outbound(
    *,
    called_number: str,
    trunk_number: str = "+14155550199",
    hide_numbers: bool = False,
    call_id: str | None = None,
    trunk_id: str = "ST_outbound",
    trunk_address: str = OUTBOUND_TRUNK_ADDRESS,
    name: str = "",
    attributes: Mapping[str, str] | None = None,
    identity: str | None = None,
    joined_at: int = 0,
) -> ParticipantInfo:
    """A leg we dial out (CreateSIPParticipant), as it joins while still dialing."""
    attrs = dict(attributes or {})
    attrs[SipAttribute.CALL_ID] = call_id or guid(SIP_CALL_PREFIX)
    attrs[SipAttribute.TRUNK_ID] = trunk_id
    if not hide_numbers:
        attrs[SipAttribute.PHONE_NUMBER] = called_number
        attrs[SipAttribute.HOSTNAME] = trunk_address
        attrs[SipAttribute.TRUNK_PHONE_NUMBER] = trunk_number
    attrs[SipAttribute.CALL_STATUS] = "dialing"
    return participant_info(identity or "sip_" + called_number, name, joined_at, attrs=attrs)


def participant_info(
    identity: str,
    name: str,
    joined_at: int,
    *,
    kind: ParticipantInfo.Kind = ParticipantInfo.Kind.SIP,
    attrs: Mapping[str, str] | None = None,
) -> ParticipantInfo:
    """A participant as LiveKit reports it once joined (active, may publish and subscribe);
    the webhook signer makes its agent and web participants here too."""
    participant = ParticipantInfo(
        sid=guid(PARTICIPANT_PREFIX),
        identity=identity,
        name=name,
        state=ParticipantInfo.State.ACTIVE,
        joined_at=joined_at,
        joined_at_ms=joined_at * 1000,
        version=1,
        kind=kind,
        permission=ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True),
    )
    participant.attributes.update(attrs or {})
    return participant
