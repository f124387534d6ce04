"""Transferring the caller with LiveKit's SIP API (TransferSIPParticipant, a cold
transfer by SIP REFER). LiveKit accepts only `sip:`, `sips:` or `tel:` URIs as the
target, so an E.164 number goes as `tel:+1415…`; and a transfer the SIP side refused
comes back as a response with status FAILED, not as an error, so the status is read."""

from __future__ import annotations

from livekit import api


class TransferFailed(Exception):
    """LiveKit or the SIP target did not complete the transfer."""


def transfer_uri(target: str) -> str:
    """The Refer-To LiveKit wants for a checked target (E.164 or a sip:/sips: URI)."""
    return f"tel:{target}" if target.startswith("+") else target


async def transfer_sip_participant(livekit: api.LiveKitAPI, *, room: str, identity: str, target: str) -> None:
    """Returns once LiveKit reports the transfer done; raises TransferFailed otherwise."""
    request = api.TransferSIPParticipantRequest(
        room_name=room, participant_identity=identity, transfer_to=transfer_uri(target), play_dialtone=False
    )
    try:
        response = await livekit.sip.transfer_sip_participant(request)
    except api.ServerError as exc:
        raise TransferFailed(f"LiveKit refused the transfer: {exc.code} {exc.message}") from exc
    # An older server answers an empty response (status ONGOING, the enum's zero): no news is success.
    if response.status == api.SIPTransferStatus.STS_TRANSFER_FAILED:
        reason = api.SIPTransferReason.Name(response.reason)
        raise TransferFailed(f"the transfer failed: {reason} (SIP {response.sip_status.code})")
