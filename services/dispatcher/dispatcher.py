"""The exactly-one algorithm: for one call and agent name, LiveKit ends up holding one
dispatch, however many times, concurrently or at however many replicas the request
arrives.

    local lock (this process) → claim (in memory or Redis SET NX, TTL = our deadline)
      claimed by us   → ListDispatch: agent already there? → return it, already_existed
                        else CreateDispatch (retried; before each retry ListDispatch
                        again, since a failed-looking attempt may have created it)
                        → keep the claim `settle_seconds` so a lagging list elsewhere
                          cannot lead to a second create
      claimed elsewhere → poll ListDispatch until the dispatch appears (already_existed)
                          or the claim frees up (its holder failed or died: TTL), all
                          within our deadline

CreateDispatch is not idempotent in LiveKit; this module is why Friday's DispatchAgent is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from services.dispatcher import errors, validation
from services.dispatcher.claims import ClaimStore, LocalLocks, claim_key
from services.dispatcher.config import DispatcherConfig
from services.dispatcher.livekit_calls import LiveKitCalls, remaining
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.transport import DispatchRecord, DispatchTransport, LiveKitCallError

log = logging.getLogger(__name__)

# A claim outlives its holder's deadline by this much, covering clock skew between
# replicas and the holder's last in-flight request.
CLAIM_GRACE_SECONDS = 1.0
# Time one more wait round needs after its sleep: a claim attempt plus a ListDispatch.
_MIN_POLL_ROUND_SECONDS = 0.1


@dataclass(frozen=True)
class DispatchOutcome:
    dispatch: DispatchRecord
    already_existed: bool


class Dispatcher:
    def __init__(
        self,
        transport: DispatchTransport,
        claims: ClaimStore,
        config: DispatcherConfig,
        metrics: DispatcherMetrics,
        *,
        report_livekit_health: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._transport = transport
        self._claims = claims
        self._config = config
        self._metrics = metrics
        self._calls = LiveKitCalls(config.retry, metrics, report_livekit_health)
        self._locks = LocalLocks()

    async def aclose(self) -> None:
        await self._transport.aclose()
        await self._claims.aclose()

    async def dispatch_agent(
        self, room: str, agent_name: str, metadata: AgentJobMetadata, deadline: float
    ) -> DispatchOutcome:
        encoded = validation.validate_dispatch(room, agent_name, metadata)
        key = claim_key(room, agent_name)
        async with self._locks.hold(key, deadline) as acquired:
            if not acquired:
                raise errors.DispatchInProgress(
                    f"another request for this call is still dispatching {agent_name!r} to {room!r}"
                )
            return await self._dispatch_once(key, room, agent_name, encoded, deadline)

    async def list_dispatches(self, room: str, deadline: float) -> list[DispatchRecord]:
        validation.validate_room(room)
        return await self._calls.run("ListDispatch", room, lambda t: self._transport.list(room, timeout=t), deadline)

    async def cancel_dispatch(self, room: str, dispatch_id: str, deadline: float) -> DispatchRecord:
        validation.validate_room(room)
        validation.validate_dispatch_id(dispatch_id)
        return await self._calls.run(
            "DeleteDispatch", room, lambda t: self._transport.delete(room, dispatch_id, timeout=t), deadline
        )

    async def _dispatch_once(
        self, key: str, room: str, agent_name: str, encoded: str, deadline: float
    ) -> DispatchOutcome:
        waited = False
        while True:
            token = await self._claims.try_acquire(key, remaining(deadline) + CLAIM_GRACE_SECONDS)
            if token is not None:
                return await self._dispatch_claimed(key, token, room, agent_name, encoded, deadline)
            # Someone else holds the call: its dispatch shows up in ListDispatch when done.
            if not waited:
                waited = True
                self._metrics.claim_waits.inc()
            existing = await self._find(room, agent_name, deadline)
            if existing is not None:
                return DispatchOutcome(existing, already_existed=True)
            poll = self._config.claims.poll_interval
            # Stop while there is still time to say why, rather than running out mid-list.
            if remaining(deadline) < poll + _MIN_POLL_ROUND_SECONDS:
                raise errors.DispatchInProgress(
                    f"dispatch of {agent_name!r} to {room!r} is in progress elsewhere and did not appear in time"
                )
            await asyncio.sleep(poll)

    async def _dispatch_claimed(
        self, key: str, token: str, room: str, agent_name: str, encoded: str, deadline: float
    ) -> DispatchOutcome:
        try:
            existing = await self._find(room, agent_name, deadline)
        except BaseException:
            await self._claims.release(key, token)  # nothing was created
            raise
        if existing is not None:
            await self._claims.release(key, token)
            return DispatchOutcome(existing, already_existed=True)

        uncertain = False  # may a failed create attempt still have created a dispatch?

        async def create(timeout: float) -> DispatchRecord:
            nonlocal uncertain
            try:
                return await self._transport.create(room, agent_name, encoded, timeout=timeout)
            except LiveKitCallError as exc:
                uncertain = uncertain or exc.may_have_landed
                raise

        async def created_anyway() -> DispatchRecord | None:
            # The previous attempt failed, but a 5xx or a timeout does not prove LiveKit
            # did nothing: look before creating again.
            timeout = min(self._config.retry.attempt_timeout, remaining(deadline))
            listed = await self._calls.once("ListDispatch", lambda t: self._transport.list(room, timeout=t), timeout)
            return self._match(listed, agent_name)

        try:
            record = await self._calls.run("CreateDispatch", room, create, deadline, before_retry=created_anyway)
        except errors.DispatchError:
            if not uncertain:
                # LiveKit itself refused every attempt: nothing was created and nothing is
                # in flight, so the next request may claim and try at once.
                await self._claims.release(key, token)
            else:
                # A create may still land: keep others polling ListDispatch for a while.
                await self._claims.keep(key, token, self._config.claims.settle_seconds)
            raise
        await self._claims.keep(key, token, self._config.claims.settle_seconds)
        log.info("created dispatch %s of %r to room %r", record.dispatch_id, agent_name, room)
        return DispatchOutcome(record, already_existed=False)

    async def _find(self, room: str, agent_name: str, deadline: float) -> DispatchRecord | None:
        dispatches = await self._calls.run(
            "ListDispatch", room, lambda t: self._transport.list(room, timeout=t), deadline
        )
        return self._match(dispatches, agent_name)

    @staticmethod
    def _match(dispatches: list[DispatchRecord], agent_name: str) -> DispatchRecord | None:
        return next((d for d in dispatches if d.agent_name == agent_name), None)
