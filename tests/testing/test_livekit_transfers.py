"""The stand-in's SIP.TransferSIPParticipant answers as livekit-server does, driven
through the real livekit-api SDK and raw Twirp (services/testing/livekit_transfers.py
cites the server code it follows). Also the agent's adapter (agent/sip_transfer.py)
against it: what the agent's transfer path sends, checked by a server that verifies
the SIP grants."""

from __future__ import annotations

import aiohttp
import pytest
from livekit import api

from agent.sip_transfer import TransferFailed, transfer_sip_participant, transfer_uri
from services.testing.livekit_api import LiveKitStandIn
from services.testing.sip_participants import inbound

ROOM = "call-transfer"
TRANSFER = "/twirp/livekit.SIP/TransferSIPParticipant"


def _caller() -> api.ParticipantInfo:
    return inbound(caller_number="+14155550199", dialed_number="+14155550100", call_id="SCL_caller1")


def _token(livekit: LiveKitStandIn, *, call: bool = True, room: str = ROOM) -> str:
    token = api.AccessToken(livekit.api_key, livekit.api_secret).with_grants(
        api.VideoGrants(room_admin=True, room=room)
    )
    if call:
        token = token.with_sip_grants(api.SIPGrants(call=True))
    return token.to_jwt()


async def _raw(livekit: LiveKitStandIn, token: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s, s.post(livekit.url + TRANSFER, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_a_transfer_with_the_sdk_reaches_the_bridge_and_the_caller_leaves(livekit: LiveKitStandIn) -> None:
    livekit.add_sip_participant(ROOM, _caller())
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lkapi:
        response = await lkapi.sip.transfer_sip_participant(
            api.TransferSIPParticipantRequest(
                room_name=ROOM, participant_identity="sip_+14155550199", transfer_to="sip:oncall@pbx.example.com"
            )
        )
    assert response.status == api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL and response.transfer_id
    (done,) = livekit.transfers.done
    assert done.sip_call_id == "SCL_caller1" and done.transfer_to == "<sip:oncall@pbx.example.com>"
    assert livekit.sip_participants(ROOM) == []


async def test_the_checks_come_in_livekit_servers_order(livekit: LiveKitStandIn) -> None:
    livekit.add_sip_participant(ROOM, _caller())
    good = {"room_name": ROOM, "participant_identity": "sip_+14155550199", "transfer_to": "tel:+14155550123"}
    cases = [
        (_token(livekit, call=False), {**good, "room_name": ""}, 400, "invalid_argument", "Missing room name"),
        (_token(livekit, call=False), good, 401, "unauthenticated", "permissions denied"),
        (_token(livekit, room="another-room"), good, 401, "unauthenticated", "permissions denied"),
        (_token(livekit), {**good, "transfer_to": "+14155550123"}, 400, "invalid_argument", "TEL URI"),
        (_token(livekit), {**good, "participant_identity": "sip_nobody"}, 404, "not_found", "participant not found"),
    ]
    for token, body, status, code, message in cases:
        got_status, error = await _raw(livekit, token, body)
        assert (got_status, error["code"]) == (status, code), (body, error)
        assert message in str(error["msg"])
    assert livekit.transfers.done == [] and livekit.sip_participants(ROOM) == ["sip_+14155550199"]


async def test_a_refused_transfer_is_a_failed_status_not_an_error(livekit: LiveKitStandIn) -> None:
    livekit.add_sip_participant(ROOM, _caller())
    livekit.transfers.fail_next(1)
    status, body = await _raw(
        livekit,
        _token(livekit),
        {"room_name": ROOM, "participant_identity": "sip_+14155550199", "transfer_to": "tel:+1"},
    )
    assert (
        status == 200
        and body["status"] == "STS_TRANSFER_FAILED"
        and body["sip_status"]["code"] == "SIP_STATUS_BUSY_HERE"
    )
    assert livekit.sip_participants(ROOM) == ["sip_+14155550199"]  # the caller is still in the room


async def test_the_agents_transfer_sends_a_tel_uri_and_reads_the_status(livekit: LiveKitStandIn) -> None:
    livekit.add_sip_participant(ROOM, _caller())
    assert transfer_uri("+14155550123") == "tel:+14155550123"
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lkapi:
        livekit.transfers.fail_next(1)
        with pytest.raises(TransferFailed, match="STR_REJECTED"):
            await transfer_sip_participant(lkapi, room=ROOM, identity="sip_+14155550199", target="+14155550123")
        await transfer_sip_participant(lkapi, room=ROOM, identity="sip_+14155550199", target="+14155550123")
        with pytest.raises(TransferFailed, match="not_found"):
            await transfer_sip_participant(lkapi, room=ROOM, identity="sip_+14155550199", target="+14155550123")
    assert [t.transfer_to for t in livekit.transfers.done] == ["tel:+14155550123", "tel:+14155550123"]
