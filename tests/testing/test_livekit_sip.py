"""SIP.ListSIPInboundTrunk on the LiveKit stand-in, through livekit-api's own client: the
`sip.admin` grant, livekit's filters on trunk ids and numbers, sorting and paging."""

from __future__ import annotations

import aiohttp
from livekit import api
from livekit.protocol.models import Pagination
from livekit.protocol.sip import ListSIPInboundTrunkRequest

from services.testing.livekit_api import LiveKitStandIn


def _setup(lk: LiveKitStandIn) -> None:
    lk.add_inbound_trunk("ST_b", ["+14155550100", "+14155550101"], name="US line")
    lk.add_inbound_trunk("ST_a", ["+442079460958"])
    lk.add_inbound_trunk("ST_c")  # no numbers: a wildcard trunk


async def _list(lk: LiveKitStandIn, **fields: object) -> list[str]:
    async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret, failover=False) as lkapi:
        answer = await lkapi.sip.list_inbound_trunk(ListSIPInboundTrunkRequest(**fields))  # type: ignore[arg-type]
    return [t.sip_trunk_id for t in answer.items]


async def test_the_sdk_lists_every_trunk_sorted_by_id(livekit: LiveKitStandIn) -> None:
    _setup(livekit)
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=False) as lkapi:
        answer = await lkapi.sip.list_inbound_trunk(ListSIPInboundTrunkRequest())
    assert [t.sip_trunk_id for t in answer.items] == ["ST_a", "ST_b", "ST_c"]
    us = answer.items[1]
    assert (us.name, list(us.numbers)) == ("US line", ["+14155550100", "+14155550101"])


async def test_trunk_ids_keep_only_those_trunks(livekit: LiveKitStandIn) -> None:
    _setup(livekit)
    assert await _list(livekit, trunk_ids=["ST_c", "ST_b", "ST_missing"]) == ["ST_b", "ST_c"]


async def test_numbers_match_as_written_or_normalized_and_wildcard_trunks_always(livekit: LiveKitStandIn) -> None:
    _setup(livekit)
    assert await _list(livekit, numbers=["+14155550101"]) == ["ST_b", "ST_c"]
    # NormalizeNumber adds the '+' and drops spaces, dashes and parentheses ...
    assert await _list(livekit, numbers=["14155550100"]) == ["ST_b", "ST_c"]
    assert await _list(livekit, numbers=["+44 (20) 7946-0958"]) == ["ST_a", "ST_c"]
    # ... but knows no country: a national number matches only the wildcard trunk.
    assert await _list(livekit, numbers=["4155550100"]) == ["ST_c"]


async def test_page_after_id_and_limit(livekit: LiveKitStandIn) -> None:
    _setup(livekit)
    assert await _list(livekit, page=Pagination(after_id="ST_a", limit=1)) == ["ST_b"]


async def test_without_the_sip_admin_grant_it_is_permissions_denied(livekit: LiveKitStandIn) -> None:
    _setup(livekit)
    room_admin = api.AccessToken(livekit.api_key, livekit.api_secret).with_grants(
        api.VideoGrants(room_admin=True, room_list=True)
    )
    sip_call = api.AccessToken(livekit.api_key, livekit.api_secret).with_sip_grants(api.SIPGrants(call=True))
    async with aiohttp.ClientSession() as s:
        for token in (room_admin, sip_call):
            headers = {"Authorization": f"Bearer {token.to_jwt()}", "Content-Type": "application/json"}
            async with s.post(f"{livekit.url}/twirp/livekit.SIP/ListSIPInboundTrunk", data=b"{}", headers=headers) as r:
                assert (r.status, await r.json()) == (401, {"code": "unauthenticated", "msg": "permissions denied"})
