"""DispatchTransport over livekit-api (`LiveKitAPI(...).agent_dispatch`, Twirp over HTTP).

One client (one aiohttp connection pool) per process. The SDK's own failover is
disabled (`failover=False`): tenacity in `livekit_calls` is the only retry layer, so a
dead LiveKit costs the attempts we budgeted, not attempts multiplied by the SDK's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from livekit import api
from livekit.protocol.agent_dispatch import AgentDispatch, CreateAgentDispatchRequest

from services.dispatcher.transport import DispatchRecord, LiveKitCallError

T = TypeVar("T")


def _record(dispatch: AgentDispatch) -> DispatchRecord:
    return DispatchRecord(
        dispatch_id=dispatch.id, agent_name=dispatch.agent_name, room=dispatch.room, metadata=dispatch.metadata
    )


class LiveKitDispatchTransport:
    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._client: api.LiveKitAPI | None = None

    def _api(self) -> api.AgentDispatchService:
        # Created lazily: aiohttp sessions must be born inside the running event loop.
        if self._client is None:
            self._client = api.LiveKitAPI(self._url, self._api_key, self._api_secret, failover=False)
        return self._client.agent_dispatch

    async def create(self, room: str, agent_name: str, metadata: str, *, timeout: float) -> DispatchRecord:
        request = CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
        return _record(await self._call(self._api().create_dispatch(request), timeout))

    async def list(self, room: str, *, timeout: float) -> list[DispatchRecord]:
        return [_record(d) for d in await self._call(self._api().list_dispatch(room), timeout)]

    async def delete(self, room: str, dispatch_id: str, *, timeout: float) -> DispatchRecord:
        return _record(await self._call(self._api().delete_dispatch(dispatch_id, room), timeout))

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

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
        except aiohttp.ClientError as exc:
            # Name the setting: on a fresh machine this is "no LiveKit server running here".
            raise LiveKitCallError(
                "transport", f"cannot reach LIVEKIT_URL={self._url}: {type(exc).__name__}: {exc}", status=None
            ) from exc
