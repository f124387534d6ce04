"""The LiveKit stand-in accepts what livekit-server accepts and rejects what it rejects."""

from __future__ import annotations

import json
import re
import time

import aiohttp
import jwt
import pytest
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol.agent_dispatch import (
    AgentDispatch,
    CreateAgentDispatchRequest,
    ListAgentDispatchRequest,
    ListAgentDispatchResponse,
)

from services.testing.livekit_api import LiveKitStandIn
from services.testing.twirp import LEEWAY_SECONDS, MiddlewareReject, TokenVerifier

ROOM = "call-_+14155550123_abc"
CREATE = "/twirp/livekit.AgentDispatchService/CreateDispatch"
LIST = "/twirp/livekit.AgentDispatchService/ListDispatch"


def _token(lk: LiveKitStandIn, *, room: str = ROOM, room_admin: bool | None = True, secret: str | None = None) -> str:
    grants = api.VideoGrants(room_admin=room_admin, room=room)
    return api.AccessToken(lk.api_key, secret or lk.api_secret).with_grants(grants).to_jwt()


async def _post(lk: LiveKitStandIn, path: str, body: bytes, *, token: str | None, ct: str) -> tuple[int, bytes]:
    headers = {"Content-Type": ct}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s, s.post(f"{lk.url}{path}", data=body, headers=headers) as r:
        return r.status, await r.read()


def _implicit(lk: LiveKitStandIn, room: str = ROOM) -> str:
    return lk.state()["rooms"][room]["implicit_dispatch"]


def _create_body(room: str = ROOM) -> bytes:
    return CreateAgentDispatchRequest(agent_name="friday-ai-agent", room=room, metadata="{}").SerializeToString()


# -- the real SDK ----------------------------------------------------------------------------


@pytest.mark.parametrize("failover", [True, False])
async def test_sdk_create_list_get_delete(livekit: LiveKitStandIn, failover: bool) -> None:
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=failover) as lkapi:
        created = await lkapi.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(agent_name="friday-ai-agent", room=ROOM, metadata='{"schemaVersion":1}')
        )
        assert re.fullmatch(r"AD_[A-Za-z0-9]{12}", created.id)
        assert (created.agent_name, created.room, created.metadata) == ("friday-ai-agent", ROOM, '{"schemaVersion":1}')
        assert created.state.created_at > 0

        listed = await lkapi.agent_dispatch.list_dispatch(ROOM)
        # The room CreateDispatch made holds its implicit dispatch too (agent name "").
        expected = [("", _implicit(livekit)), ("friday-ai-agent", created.id)]
        assert sorted((d.agent_name, d.id) for d in listed) == expected
        assert (await lkapi.agent_dispatch.get_dispatch(created.id, ROOM)).id == created.id
        assert await lkapi.agent_dispatch.get_dispatch("AD_doesnotexist", ROOM) is None

        deleted = await lkapi.agent_dispatch.delete_dispatch(created.id, ROOM)
        assert deleted.id == created.id
        assert deleted.state.deleted_at == 0  # livekit-server never sets it
        assert [d.agent_name for d in await lkapi.agent_dispatch.list_dispatch(ROOM)] == [""]
    assert livekit.create_count() == 1
    assert [c.method for c in livekit.calls] == [
        "CreateDispatch",
        "ListDispatch",
        "ListDispatch",
        "ListDispatch",
        "DeleteDispatch",
        "ListDispatch",
    ]
    assert all(c.room == ROOM and c.status == 200 for c in livekit.calls)


async def test_create_does_not_dedupe(livekit: LiveKitStandIn) -> None:
    req = CreateAgentDispatchRequest(agent_name="friday-ai-agent", room=ROOM)
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lkapi:
        first = await lkapi.agent_dispatch.create_dispatch(req)
        second = await lkapi.agent_dispatch.create_dispatch(req)
        other = await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name="x", room="room-2"))
    assert first.id != second.id
    assert [d.id for d in livekit.dispatches(ROOM)] == [first.id, second.id]
    assert {d.id for d in livekit.all_dispatches()} == {first.id, second.id, other.id}
    assert livekit.create_count() == 3


@pytest.mark.parametrize(
    ("key", "secret"),
    [("devkey-test", "wrong-secret-wrong-secret-wrong-secret!"), ("another-key", None)],
)
async def test_sdk_with_wrong_credentials_gets_401(livekit: LiveKitStandIn, key: str, secret: str | None) -> None:
    async with api.LiveKitAPI(livekit.url, key, secret or livekit.api_secret) as lkapi:
        with pytest.raises(api.TwirpError) as excinfo:
            await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name="a", room=ROOM))
    assert excinfo.value.status == 401
    assert livekit.all_dispatches() == []
    assert livekit.create_count() == 0


async def test_delete_unknown_dispatch_is_not_found(livekit: LiveKitStandIn) -> None:
    livekit.create_room(ROOM)
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lkapi:
        with pytest.raises(api.TwirpError) as excinfo:
            await lkapi.agent_dispatch.delete_dispatch("AD_unknown12345", ROOM)
    assert (excinfo.value.status, excinfo.value.code, excinfo.value.message) == (
        404,
        "not_found",
        "dispatch ID not found",
    )


# -- auth as livekit-server does it ------------------------------------------------------------


async def test_token_for_another_room_is_rejected(livekit: LiveKitStandIn) -> None:
    status, body = await _post(
        livekit, CREATE, _create_body(), token=_token(livekit, room="other-room"), ct="application/protobuf"
    )
    assert status == 401
    assert json.loads(body) == {"code": "unauthenticated", "msg": "permissions denied"}
    assert livekit.all_dispatches() == []


async def test_missing_room_admin_is_rejected(livekit: LiveKitStandIn) -> None:
    status, body = await _post(
        livekit, CREATE, _create_body(), token=_token(livekit, room_admin=None), ct="application/protobuf"
    )
    assert (status, json.loads(body)["code"]) == (401, "unauthenticated")
    assert livekit.all_dispatches() == []


async def test_missing_authorization_is_rejected(livekit: LiveKitStandIn) -> None:
    status, body = await _post(livekit, CREATE, _create_body(), token=None, ct="application/protobuf")
    assert (status, json.loads(body)["code"]) == (401, "unauthenticated")


async def test_wrong_secret_is_rejected_by_middleware_as_plain_text(livekit: LiveKitStandIn) -> None:
    bad = _token(livekit, secret="not-the-secret-not-the-secret-not-the-secret")
    status, body = await _post(livekit, CREATE, _create_body(), token=bad, ct="application/protobuf")
    assert status == 401
    assert body.startswith(b"invalid authorization token: ")  # livekit-server's HandleError writes err.Error()
    assert livekit.all_dispatches() == []


async def test_expired_token_is_rejected(livekit: LiveKitStandIn) -> None:
    past = int(time.time()) - 3600
    video = {"roomAdmin": True, "room": ROOM}
    claims = {"iss": livekit.api_key, "nbf": past, "exp": past + 600, "video": video}
    expired = jwt.encode(claims, livekit.api_secret, algorithm="HS256")
    status, body = await _post(livekit, CREATE, _create_body(), token=expired, ct="application/protobuf")
    assert status == 401 and b"expired" in body.lower()


async def test_token_without_exp_is_rejected(livekit: LiveKitStandIn) -> None:
    claims = {"iss": livekit.api_key, "video": {"roomAdmin": True, "room": ROOM}}
    forever = jwt.encode(claims, livekit.api_secret, algorithm="HS256")
    status, _ = await _post(livekit, CREATE, _create_body(), token=forever, ct="application/protobuf")
    assert status == 401


async def test_not_yet_valid_token_is_rejected(livekit: LiveKitStandIn) -> None:
    future = int(time.time()) + 3600
    claims = {"iss": livekit.api_key, "nbf": future, "exp": future + 600, "video": {"roomAdmin": True, "room": ROOM}}
    early = jwt.encode(claims, livekit.api_secret, algorithm="HS256")
    status, _ = await _post(livekit, CREATE, _create_body(), token=early, ct="application/protobuf")
    assert status == 401


def test_a_remembered_token_is_still_rejected_once_it_expires() -> None:
    clock = [time.time()]
    verifier = TokenVerifier("key", "s" * 40, clock=lambda: clock[0])
    claims = {"iss": "key", "exp": int(clock[0]) + 5, "video": {"roomAdmin": True, "room": ROOM}}
    token = "Bearer " + jwt.encode(claims, "s" * 40, algorithm="HS256")
    assert verifier.grants(token).room == ROOM
    assert verifier.grants(token).room_admin  # the repeat is answered from memory
    clock[0] += 5 + LEEWAY_SECONDS + 1
    with pytest.raises(MiddlewareReject, match="expired"):
        verifier.grants(token)


async def test_non_bearer_authorization_is_rejected(livekit: LiveKitStandIn) -> None:
    headers = {"Content-Type": "application/protobuf", "Authorization": _token(livekit)}
    async with aiohttp.ClientSession() as s, s.post(livekit.url + CREATE, data=_create_body(), headers=headers) as r:
        assert r.status == 401
        assert "Must start with Bearer" in await r.text()


# -- Twirp encodings and routing -------------------------------------------------------------


async def test_json_request_gets_json_response(livekit: LiveKitStandIn) -> None:
    body = json.dumps({"agentName": "friday-ai-agent", "room": ROOM, "metadata": "{}", "futureField": 1}).encode()
    status, raw = await _post(livekit, CREATE, body, token=_token(livekit), ct="application/json")
    assert status == 200
    created = json.loads(raw)
    assert created["agent_name"] == "friday-ai-agent" and created["id"].startswith("AD_")

    list_body = json.dumps({"room": ROOM, "dispatch_id": created["id"]}).encode()
    status, raw = await _post(livekit, LIST, list_body, token=_token(livekit), ct="application/json; charset=utf-8")
    assert status == 200
    assert [d["id"] for d in json.loads(raw)["agent_dispatches"]] == [created["id"]]
    assert livekit.calls[0].content_type == "application/json"


async def test_protobuf_list_filters_by_dispatch_id(livekit: LiveKitStandIn) -> None:
    for _ in range(2):
        status, _ = await _post(livekit, CREATE, _create_body(), token=_token(livekit), ct="application/protobuf")
        assert status == 200
    wanted = livekit.dispatches(ROOM)[1].id
    body = ListAgentDispatchRequest(room=ROOM, dispatch_id=wanted).SerializeToString()
    status, raw = await _post(livekit, LIST, body, token=_token(livekit), ct="application/protobuf")
    assert status == 200
    assert [d.id for d in ListAgentDispatchResponse.FromString(raw).agent_dispatches] == [wanted]
    # Protobuf response decodes as the message, i.e. it is not JSON.
    assert isinstance(livekit.dispatches(ROOM)[0], AgentDispatch)


async def test_malformed_bodies_are_twirp_malformed(livekit: LiveKitStandIn) -> None:
    status, raw = await _post(livekit, CREATE, b"{not json", token=_token(livekit), ct="application/json")
    assert (status, json.loads(raw)["code"]) == (400, "malformed")
    status, raw = await _post(livekit, CREATE, b"\xff\xff\xff", token=_token(livekit), ct="application/protobuf")
    assert (status, json.loads(raw)["code"]) == (400, "malformed")
    assert livekit.all_dispatches() == []


async def test_unknown_method_and_content_type_are_bad_route(livekit: LiveKitStandIn) -> None:
    path = "/twirp/livekit.AgentDispatchService/UpdateDispatch"
    status, raw = await _post(livekit, path, _create_body(), token=_token(livekit), ct="application/protobuf")
    assert (status, json.loads(raw)["code"]) == (404, "bad_route")
    status, raw = await _post(livekit, CREATE, _create_body(), token=_token(livekit), ct="text/plain")
    assert (status, json.loads(raw)["code"]) == (404, "bad_route")


async def test_settings_regions_is_an_empty_list(livekit: LiveKitStandIn) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{livekit.url}/settings/regions") as r:
        assert r.status == 200
        assert await r.json() == {"regions": []}


# -- fault injection -------------------------------------------------------------------------


@pytest.mark.parametrize("failover", [True, False])
async def test_fail_next_then_recover(livekit: LiveKitStandIn, failover: bool) -> None:
    livekit.fail_next(2)
    req = CreateAgentDispatchRequest(agent_name="a", room=ROOM)
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=failover) as lkapi:
        for _ in range(2):
            with pytest.raises(api.TwirpError) as excinfo:
                await lkapi.agent_dispatch.create_dispatch(req)
            assert (excinfo.value.status, excinfo.value.code) == (503, "unavailable")
        await lkapi.agent_dispatch.create_dispatch(req)
    # A self-hosted URL gets exactly one attempt per SDK call: no hidden retries inflate the counts.
    assert [c.status for c in livekit.calls] == [503, 503, 200]
    assert livekit.calls[0].room == ROOM
    assert livekit.create_count() == 1 and len(livekit.dispatches(ROOM)) == 1


async def test_fail_next_with_custom_code(livekit: LiveKitStandIn) -> None:
    livekit.fail_next(1, status=429, code="resource_exhausted")
    status, raw = await _post(livekit, CREATE, _create_body(), token=_token(livekit), ct="application/protobuf")
    assert (status, json.loads(raw)["code"]) == (429, "resource_exhausted")


async def test_latency_delays_calls(livekit: LiveKitStandIn) -> None:
    livekit.set_latency(1.0)
    timeout = aiohttp.ClientTimeout(total=0.1)
    headers = {"Content-Type": "application/protobuf", "Authorization": f"Bearer {_token(livekit)}"}
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(TimeoutError):
            async with s.post(livekit.url + CREATE, data=_create_body(), headers=headers) as r:
                await r.read()
        livekit.set_latency(0)
        async with s.post(livekit.url + CREATE, data=_create_body(), headers=headers) as r:
            assert r.status == 200


async def test_delay_next_delays_only_the_named_method_and_the_work_still_lands(livekit: LiveKitStandIn) -> None:
    livekit.create_room(ROOM)
    livekit.delay_next(1, 1.0, method="CreateDispatch")
    headers = {"Content-Type": "application/protobuf", "Authorization": f"Bearer {_token(livekit)}"}
    list_body = ListAgentDispatchRequest(room=ROOM).SerializeToString()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as s:
        # A ListDispatch is not the named method: answered at once, the delay stays armed.
        async with s.post(livekit.url + LIST, data=list_body, headers=headers) as r:
            assert r.status == 200
        with pytest.raises(TimeoutError):
            async with s.post(livekit.url + CREATE, data=_create_body(), headers=headers) as r:
                await r.read()
        # The client gave up; livekit-server finishes the create anyway, and so does the stand-in.
        assert livekit.in_flight == 1
        await livekit.wait_idle()
        assert livekit.in_flight == 0
        assert len(livekit.dispatches(ROOM)) == 1
        # Only the next create was delayed.
        async with s.post(livekit.url + CREATE, data=_create_body(), headers=headers) as r:
            assert r.status == 200
    assert len(livekit.dispatches(ROOM)) == 2


async def test_garble_next_does_the_work_but_answers_an_unreadable_200(livekit: LiveKitStandIn) -> None:
    livekit.create_room(ROOM)
    livekit.garble_next(1, method="CreateDispatch")
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret, failover=False) as lkapi:
        assert [d.agent_name for d in await lkapi.agent_dispatch.list_dispatch(ROOM)] == [""]
        with pytest.raises(DecodeError):
            await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name="a", room=ROOM))
        assert sorted(d.agent_name for d in await lkapi.agent_dispatch.list_dispatch(ROOM)) == ["", "a"]
        await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name="a", room=ROOM))
    assert livekit.create_count() == 2


async def test_delay_and_garble_over_the_control_api(livekit: LiveKitStandIn) -> None:
    async with aiohttp.ClientSession() as s:
        for name, body in (
            ("delay_next", {"n": 2, "seconds": 0.5, "method": "CreateDispatch"}),
            ("garble_next", {"n": 1}),
        ):
            async with s.post(f"{livekit.url}/_standin/{name}", json=body) as r:
                assert r.status == 200
    assert (livekit._delay.n, livekit._delay.seconds, livekit._delay.method) == (2, 0.5, "CreateDispatch")
    assert (livekit._garble.n, livekit._garble.method) == (1, None)
    livekit.reset()
    assert livekit._delay.n == livekit._garble.n == 0
