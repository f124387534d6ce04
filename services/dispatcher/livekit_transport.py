"""DispatchTransport over livekit-api's AgentDispatchService, RoomService and
SIPService (Twirp over HTTP).

One client (one aiohttp connection pool) per process. The SDK's own failover is
disabled (`failover=False`): tenacity in `livekit_calls` is the only retry layer, so a
dead LiveKit costs the attempts we budgeted, not attempts multiplied by the SDK's."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.api.agent_dispatch_service import AgentDispatchService
from livekit.api.room_service import RoomService
from livekit.api.sip_service import SipService
from livekit.protocol.agent import JobStatus
from livekit.protocol.agent_dispatch import AgentDispatch, CreateAgentDispatchRequest
from livekit.protocol.room import ListRoomsRequest
from livekit.protocol.sip import ListSIPInboundTrunkRequest

from services.dispatcher.transport import DispatchRecord, JobRecord, LiveKitCallError

T = TypeVar("T")


# The SDK signs a new JWT for every request, twice per dispatch (List then Create): a
# visible share of the dispatcher's CPU (measured in the bench; see README Performance).
# A room-admin token for one room is reusable, so keep each for a while, well inside its
# own validity.
_TOKEN_VALIDITY = timedelta(minutes=15)
_TOKEN_REUSE_SECONDS = 5 * 60
_TOKEN_CACHE_ROOMS = 1024


class _TokenReuse:
    """Mixed into a livekit-api service: reuses the JWT it signs for the same grants.
    Overrides the SDK's `_auth_header` hook; the grants stay exactly the SDK's
    (roomAdmin + room for dispatches, roomList for rooms, sip.admin for trunks)."""

    api_key: str
    api_secret: str

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._headers: OrderedDict[tuple[str, str], tuple[float, dict[str, str]]] = OrderedDict()

    def _auth_header(self, grants: api.VideoGrants | None, sip: api.SIPGrants | None = None) -> dict[str, str]:
        key = (repr(grants), repr(sip))
        now = time.monotonic()
        cached = self._headers.get(key)
        if cached is not None and cached[0] > now:
            self._headers.move_to_end(key)
            return cached[1]
        signer = api.AccessToken(self.api_key, self.api_secret).with_ttl(_TOKEN_VALIDITY)
        if grants is not None:
            signer = signer.with_grants(grants)
        if sip is not None:
            signer = signer.with_sip_grants(sip)
        token = signer.to_jwt()
        header = {"authorization": f"Bearer {token}"}
        self._headers[key] = (now + _TOKEN_REUSE_SECONDS, header)
        if len(self._headers) > _TOKEN_CACHE_ROOMS:
            self._headers.popitem(last=False)
        return header


class _DispatchService(_TokenReuse, AgentDispatchService):
    pass


class _RoomService(_TokenReuse, RoomService):
    pass


class _SipService(_TokenReuse, SipService):
    pass


def _record(dispatch: AgentDispatch) -> DispatchRecord:
    return DispatchRecord(
        dispatch_id=dispatch.id,
        agent_name=dispatch.agent_name,
        room=dispatch.room,
        metadata=dispatch.metadata,
        created_at=dispatch.state.created_at,
        jobs=tuple(
            JobRecord(
                job_id=job.id,
                status=JobStatus.Name(job.state.status),
                worker_id=job.state.worker_id,
                participant_identity=job.state.participant_identity,
                error=job.state.error,
            )
            for job in dispatch.state.jobs
        ),
    )


class LiveKitDispatchTransport:
    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._session: aiohttp.ClientSession | None = None
        self._service: _DispatchService | None = None
        self._rooms: _RoomService | None = None
        self._sip: _SipService | None = None

    def _api(self) -> _DispatchService:
        # Created lazily: aiohttp sessions must be born inside the running event loop.
        if self._service is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            args = (self._session, self._url, self._api_key, self._api_secret)
            self._service = _DispatchService(*args, failover=False)
            self._rooms = _RoomService(*args, failover=False)
            self._sip = _SipService(*args, failover=False)
        return self._service

    def _room_api(self) -> _RoomService:
        self._api()
        assert self._rooms is not None
        return self._rooms

    def _sip_api(self) -> _SipService:
        self._api()
        assert self._sip is not None
        return self._sip

    async def create(self, room: str, agent_name: str, metadata: str, *, timeout: float) -> DispatchRecord:
        request = CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
        return _record(await self._call(self._api().create_dispatch(request), timeout))

    async def list(self, room: str, *, timeout: float) -> list[DispatchRecord]:
        return [_record(d) for d in await self._call(self._api().list_dispatch(room), timeout)]

    async def delete(self, room: str, dispatch_id: str, *, timeout: float) -> DispatchRecord:
        return _record(await self._call(self._api().delete_dispatch(dispatch_id, room), timeout))

    async def room_exists(self, room: str, *, timeout: float) -> bool:
        return await self.room_created_at(room, timeout=timeout) is not None

    async def room_created_at(self, room: str, *, timeout: float) -> float | None:
        found = await self._call(self._room_api().list_rooms(ListRoomsRequest(names=[room])), timeout)
        match = next((r for r in found.rooms if r.name == room), None)
        if match is None:
            return None
        return match.creation_time_ms / 1000 if match.creation_time_ms else float(match.creation_time)

    async def trunk_numbers(self, trunk_id: str, *, timeout: float) -> builtins.list[str] | None:
        request = ListSIPInboundTrunkRequest(trunk_ids=[trunk_id])
        found = await self._call(self._sip_api().list_inbound_trunk(request), timeout)
        trunk = next((t for t in found.items if t.sip_trunk_id == trunk_id), None)
        return list(trunk.numbers) if trunk is not None else None

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            self._service = self._rooms = self._sip = None
            await session.close()

    async def _call(self, awaitable: Awaitable[T], timeout: float) -> T:
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await awaitable
        except api.ServerError as exc:
            raise LiveKitCallError(exc.code, exc.message, status=exc.status) from exc
        except TimeoutError as exc:
            raise LiveKitCallError(
                "timeout", f"no answer from LIVEKIT_URL={self._url} within {timeout:.3f}s", status=None
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # The connection was never made, so the request was never sent: safe to send again.
            # Name the setting: on a fresh machine this is "no LiveKit server running here".
            raise LiveKitCallError(
                "connect", f"cannot reach LIVEKIT_URL={self._url}: {type(exc).__name__}: {exc}", status=None
            ) from exc
        except aiohttp.ClientError as exc:
            # Sent (or maybe sent) and then the connection failed: LiveKit may have acted on it.
            raise LiveKitCallError(
                "transport", f"LIVEKIT_URL={self._url} failed mid-request: {type(exc).__name__}: {exc}", status=None
            ) from exc
        except DecodeError as exc:
            # The SDK only parses HTTP 200 bodies: LiveKit (or whatever answers at
            # LIVEKIT_URL) said yes in a form we cannot read; the work may have been done.
            raise LiveKitCallError(
                "malformed", f"unreadable HTTP 200 from LIVEKIT_URL={self._url}: {exc}", status=200
            ) from exc
        except Exception as exc:
            # Anything else the SDK raises would reach the caller as UNKNOWN and skip the
            # claim bookkeeping; keep it inside the LiveKitCallError world (ambiguous).
            raise LiveKitCallError(
                "unexpected", f"LiveKit request failed: {type(exc).__name__}: {exc}", status=None
            ) from exc
