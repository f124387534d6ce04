"""The small pure pieces: claim keys, in-memory claims, local locks, config from env,
and the Twirp → domain error table for cases the stand-in cannot produce."""

from __future__ import annotations

import asyncio

from services.dispatcher import errors
from services.dispatcher.claims import LocalLocks, claim_key
from services.dispatcher.config import DispatcherConfig
from services.dispatcher.livekit_calls import to_domain_error
from services.dispatcher.transport import LiveKitCallError
from tests.dispatcher.conftest import AGENT


def test_claim_key_is_per_room_and_agent_name() -> None:
    assert claim_key("room-a", AGENT) == f"room:room-a:agent:{AGENT}"
    assert claim_key("room-a", "other") != claim_key("room-a", AGENT)
    assert claim_key("room-b", AGENT) != claim_key("room-a", AGENT)


async def test_local_locks_serialise_and_leave_nothing_behind() -> None:
    locks = LocalLocks()
    order: list[str] = []
    deadline = asyncio.get_running_loop().time() + 5

    async def worker(name: str) -> None:
        async with locks.hold("k", deadline) as acquired:
            assert acquired
            order.append(f"{name}-in")
            await asyncio.sleep(0.01)
            order.append(f"{name}-out")

    await asyncio.gather(worker("a"), worker("b"))
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])
    assert len(locks) == 0


async def test_local_lock_wait_ends_at_the_deadline() -> None:
    locks = LocalLocks()
    loop = asyncio.get_running_loop()
    async with locks.hold("k", loop.time() + 5):
        async with locks.hold("k", loop.time() + 0.02) as acquired:
            assert not acquired
    assert len(locks) == 0


def test_config_from_env_defaults_to_livekit_dev() -> None:
    config = DispatcherConfig.from_env({})
    assert (config.livekit.url, config.livekit.api_key, config.livekit.api_secret) == (
        "http://localhost:7880",
        "devkey",
        "secret",
    )
    assert config.claims.redis_url is None
    assert config.claims.redis_timeout == 0.25
    assert "secret" not in repr(config.livekit)
    assert DispatcherConfig.from_env({"DISPATCHER_REDIS_TIMEOUT_SECONDS": "0.5"}).claims.redis_timeout == 0.5

    config = DispatcherConfig.from_env(
        {"REDIS_URL": "redis://r:6379/2", "DISPATCHER_CLAIM_PREFIX": "p:", "LIVEKIT_URL": "https://lk.example"}
    )
    assert (config.claims.redis_url, config.claims.key_prefix, config.livekit.url) == (
        "redis://r:6379/2",
        "p:",
        "https://lk.example",
    )


def test_error_table() -> None:
    def mapped(code: str, status: int | None, method: str = "CreateDispatch") -> type[errors.DispatchError]:
        return type(to_domain_error(LiveKitCallError(code, "m", status=status), method=method, room="r"))

    assert mapped("unauthenticated", 401) is errors.LiveKitRejectedCredentials
    assert mapped("unknown", 401) is errors.LiveKitRejectedCredentials  # a proxy's non-Twirp 401
    assert mapped("not_found", 404, "DeleteDispatch") is errors.DispatchNotFound
    assert mapped("not_found", 404) is errors.RoomNotFound
    assert mapped("bad_route", 404) is errors.LiveKitPrecondition
    assert mapped("transport", None) is errors.LiveKitUnavailable
    assert mapped("internal", 500) is errors.LiveKitUnavailable
    assert mapped("dataloss", 418) is errors.LiveKitInternal
    assert not LiveKitCallError("unimplemented", "m", status=501).retryable
    assert LiveKitCallError("unavailable", "m", status=503).retryable
    assert not LiveKitCallError("invalid_argument", "m", status=400).retryable


async def test_room_tokens_are_reused_per_room_and_carry_that_rooms_grant() -> None:
    import aiohttp
    from livekit.api import SIPGrants, TokenVerifier, VideoGrants

    from services.dispatcher.livekit_transport import _DispatchService, _RoomService, _SipService

    secret = "a-secret-that-is-long-enough-for-hs256-keys"
    async with aiohttp.ClientSession() as session:
        args = (session, "http://127.0.0.1:1", "APIkey", secret)
        service = _DispatchService(*args, failover=False)
        first = service._auth_header(VideoGrants(room_admin=True, room="room-a"))
        again = service._auth_header(VideoGrants(room_admin=True, room="room-a"))
        other = service._auth_header(VideoGrants(room_admin=True, room="room-b"))
        listing = _RoomService(*args, failover=False)._auth_header(VideoGrants(room_list=True))
        trunks = _SipService(*args, failover=False)._auth_header(None, SIPGrants(admin=True))

    assert first is again
    assert other != first
    verify = TokenVerifier("APIkey", secret).verify
    claims = verify(other["authorization"].removeprefix("Bearer "))
    assert claims.video.room == "room-b" and claims.video.room_admin
    assert verify(listing["authorization"].removeprefix("Bearer ")).video.room_list
    assert verify(trunks["authorization"].removeprefix("Bearer ")).sip.admin


def test_which_create_failures_may_have_landed() -> None:
    def landed(code: str, status: int | None) -> bool:
        return LiveKitCallError(code, "m", status=status).may_have_landed

    # No answer, or an answer that is not LiveKit's handler speaking: maybe created.
    assert landed("timeout", None)
    assert landed("transport", None)  # connection dropped after sending
    assert landed("unexpected", None)
    assert landed("unknown", 502) and landed("unknown", 504)
    assert landed("unknown", 503)  # a 5xx without a Twirp body: a proxy, not LiveKit
    assert landed("deadline_exceeded", 503)
    assert landed("malformed", 200)  # a success we could not read
    # LiveKit's handler refused, or nothing was ever sent: not created.
    assert not landed("connect", None)
    assert not landed("unavailable", 503)
    assert not landed("internal", 500)
    assert not landed("resource_exhausted", 429)
    assert not landed("invalid_argument", 400)
    assert not landed("malformed", 400)  # Twirp's own malformed: LiveKit refused our body


def test_an_unreadable_success_is_internal_not_a_rejected_request() -> None:
    error = to_domain_error(LiveKitCallError("malformed", "m", status=200), method="ListDispatch", room="r")
    assert type(error) is errors.LiveKitInternal
    assert not LiveKitCallError("malformed", "m", status=200).retryable
    assert type(to_domain_error(LiveKitCallError("malformed", "m", status=400), method="x", room="r")) is (
        errors.LiveKitRejectedRequest
    )
