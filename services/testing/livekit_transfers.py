"""SIP.TransferSIPParticipant as livekit-server answers it (`pkg/service/sip.go`
TransferSIPParticipant and transferSIPParticipantRequest; livekit/protocol
`livekit/sip.go` TransferSIPParticipantRequest.ValidateResult), over the SIP
participants the stand-in's rooms hold:

* no room name / no identity → `invalid_argument` ("Missing room name" / "Missing
  participant identity"), before any permission check;
* then the token needs the `sip.call` grant and `roomAdmin` for that room
  (twirpAuthError: `unauthenticated` "permissions denied");
* `transfer_to` must be a `sip:`, `sips:` or `tel:` URI (optionally in `<…>`): a bare
  `+1415…` is `invalid_argument` "transfer_to must be a valid SIP(s) or TEL URI …" —
  whatever livekit-agents' docstring says, LiveKit wants `tel:+1415…`;
* an unknown room goes unanswered over psrpc (`deadline_exceeded` after the missing-room
  delay); an unknown participant is `not_found`; one without `sip.callID` is
  `invalid_argument` "no SIP session associated with participant";
* otherwise the SIP bridge sends REFER: by default it succeeds and the caller's leg leaves
  the room (the call is now between the caller and the target); `fail_next` makes the
  next ones end with `STS_TRANSFER_FAILED` and a SIP status, as a busy target does.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.protocol.models import ParticipantInfo
from livekit.protocol.sip import (
    SIPStatus,
    SIPStatusCode,
    SIPTransferReason,
    SIPTransferStatus,
    TransferSIPParticipantRequest,
    TransferSIPParticipantResponse,
)

from services.common.livekit_names import SipAttribute

from .livekit_ids import guid
from .livekit_rooms import RoomRecord
from .twirp import Grants, TwirpError, ensure_admin, permission_denied

TRANSFER_PREFIX = "STR_"


@dataclass(frozen=True)
class Transfer:
    """One TransferSIPParticipant that reached the SIP bridge."""

    room: str
    identity: str
    sip_call_id: str
    transfer_to: str  # as sent to the bridge (a sip: URI in <…>)
    status: int  # SIPTransferStatus


def validate(req: TransferSIPParticipantRequest, grants: Grants) -> str:
    """The request's checks up to the room lookup, in livekit-server's order; returns the
    `transfer_to` the bridge gets."""
    if not req.room_name:
        raise TwirpError("invalid_argument", "Missing room name")
    if not req.participant_identity:
        raise TwirpError("invalid_argument", "Missing participant identity")
    if not grants.sip_call:
        raise permission_denied()
    ensure_admin(grants, req.room_name)
    if not req.transfer_to:
        raise TwirpError("invalid_argument", "missing transfer to")
    inner = req.transfer_to
    if inner.startswith("<") and inner.endswith(">"):
        inner = inner[1:-1]
    if not inner.startswith(("sip:", "sips:", "tel:")):
        raise TwirpError("invalid_argument", "transfer_to must be a valid SIP(s) or TEL URI (sip:, sips: or tel:)")
    return f"<{inner}>" if inner.startswith(("sip:", "sips:")) else inner


class SipTransfers:
    def __init__(self) -> None:
        self.done: list[Transfer] = []
        self._failures = 0
        self._failure_code: SIPStatusCode = SIPStatusCode.SIP_STATUS_BUSY_HERE

    def fail_next(self, n: int, code: SIPStatusCode = SIPStatusCode.SIP_STATUS_BUSY_HERE) -> None:
        self._failures, self._failure_code = n, code

    def transfer(
        self, record: RoomRecord, req: TransferSIPParticipantRequest, transfer_to: str
    ) -> TransferSIPParticipantResponse:
        participant: ParticipantInfo | None = record.sip_participants.get(req.participant_identity)
        if participant is None:
            raise TwirpError("not_found", "participant not found")
        call_id = participant.attributes.get(SipAttribute.CALL_ID)
        if not call_id:
            raise TwirpError("invalid_argument", "no SIP session associated with participant")
        response = TransferSIPParticipantResponse(transfer_id=guid(TRANSFER_PREFIX))
        if self._failures > 0:
            self._failures -= 1
            response.status = SIPTransferStatus.STS_TRANSFER_FAILED
            response.reason = SIPTransferReason.STR_REJECTED
            response.sip_status.CopyFrom(SIPStatus(code=self._failure_code, status="Busy Here"))
        else:
            response.status = SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
            response.reason = SIPTransferReason.STR_COMPLETED
            del record.sip_participants[req.participant_identity]  # the caller's leg left the room
        self.done.append(Transfer(record.proto.name, req.participant_identity, call_id, transfer_to, response.status))
        return response
