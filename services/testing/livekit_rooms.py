"""The rooms livekit-server holds and their agent dispatches (livekit-server `pkg/rtc/room.go`,
`pkg/service/roomallocator.go`), without any HTTP: `livekit_api` serves them over Twirp.

What is modelled:

* A room (`RM_…` sid, the server's default empty/departure timeouts and codecs) is created
  explicitly or by CreateDispatch; creating one that exists changes nothing.
* Every new room holds an implicit dispatch: a random `AD_…` id, agent name "", no metadata,
  `state.created_at` — the backward-compatible dispatch to name-less workers — and its job is
  launched at once.
* A dispatch gets `state.created_at` (ns) and never `deleted_at`; its job is launched in the
  background after CreateDispatch has answered (so the answer carries no job), and the job
  appears in `state.jobs` once a worker took it (`agent_workers`). The agent then joins the
  room as a participant of kind AGENT.
* ListDispatch answers copies in no particular order (livekit-server keeps a Go map).
* DeleteDispatch removes the dispatch at once and answers it as it was; then, once its jobs
  have finished launching, each job is terminated (`JS_SUCCESS` on the worker, and on the
  deleted dispatch's own copy) and its agent leaves the room.
* Closing a room (DeleteRoom) removes it with its dispatches; its agents leave, so the worker
  records their jobs as `JS_FAILED` "agent worker left the room".

Not modelled: participants other than the agents, RTC of any kind, rooms closing by
themselves after their empty timeout, explicit room dispatches (`CreateRoom.agents`), room
metadata and egress, and jobs for publishers or participants.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from livekit.protocol.agent import Job, JobType
from livekit.protocol.agent_dispatch import AgentDispatch, AgentDispatchState
from livekit.protocol.models import Codec, ParticipantInfo, Room

from .agent_workers import AgentWorkers, TerminateReason
from .livekit_ids import DISPATCH_PREFIX, JOB_PREFIX, PARTICIPANT_PREFIX, ROOM_PREFIX, guid

# livekit-server's defaults (pkg/config): room.empty_timeout, room.departure_timeout, room.enabled_codecs.
EMPTY_TIMEOUT_SECONDS = 5 * 60
DEPARTURE_TIMEOUT_SECONDS = 20
ENABLED_CODECS = (
    "audio/PCMU",
    "audio/PCMA",
    "audio/opus",
    "audio/red",
    "video/VP8",
    "video/H264",
    "video/VP9",
    "video/AV1",
    "video/H265",
    "video/rtx",
)
AGENT_NAME_ATTRIBUTE = "lk.agent_name"


@dataclass
class _Dispatch:
    message: AgentDispatch
    launching: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class RoomRecord:
    proto: Room
    dispatches: dict[str, _Dispatch] = field(default_factory=dict)
    agents: dict[str, ParticipantInfo] = field(default_factory=dict)  # identity -> the agent's participant
    sip_participants: dict[str, ParticipantInfo] = field(default_factory=dict)  # identity -> a caller's leg
    agent_jobs: dict[str, str] = field(default_factory=dict)  # identity -> job id
    implicit_dispatch_id: str = ""
    closed: bool = False
    # The most dispatches with an agent name held at once (a double that was healed shows here).
    peak_named_dispatches: int = 0

    def dispatch_list(self, *, include_implicit: bool = False) -> list[AgentDispatch]:
        """Copies, oldest first."""
        return [
            _copy(d.message)
            for d in self.dispatches.values()
            if include_implicit or d.message.id != self.implicit_dispatch_id
        ]

    def snapshot(self) -> Room:
        out = Room()
        out.CopyFrom(self.proto)
        out.num_participants = len(self.agents) + len(self.sip_participants)
        return out


class Rooms:
    def __init__(self, workers: AgentWorkers) -> None:
        self._workers = workers
        self._rooms: dict[str, RoomRecord] = {}
        self._background: set[asyncio.Task[None]] = set()
        workers.on_agent_left = self.agent_left

    # -- rooms ---------------------------------------------------------------------------

    def create(self, name: str) -> RoomRecord:
        """The room `name`, created (with its implicit dispatch) when absent."""
        record = self._rooms.get(name)
        if record is not None:
            return record
        now = time.time()
        proto = Room(
            sid=guid(ROOM_PREFIX),
            name=name,
            empty_timeout=EMPTY_TIMEOUT_SECONDS,
            departure_timeout=DEPARTURE_TIMEOUT_SECONDS,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            turn_password=secrets.token_urlsafe(24),
        )
        proto.enabled_codecs.extend(Codec(mime=mime) for mime in ENABLED_CODECS)
        record = RoomRecord(proto, implicit_dispatch_id=guid(DISPATCH_PREFIX))
        self._rooms[name] = record
        self.add_dispatch(record, AgentDispatch(id=record.implicit_dispatch_id, agent_name="", room=name))
        return record

    def get(self, name: str) -> RoomRecord | None:
        return self._rooms.get(name)

    def names(self) -> list[str]:
        return list(self._rooms)

    def list_rooms(self, names: Iterable[str] = ()) -> list[Room]:
        wanted = set(names)
        return [r.snapshot() for n, r in self._rooms.items() if not wanted or n in wanted]

    def close(self, name: str) -> bool:
        """DeleteRoom: False when there was no such room."""
        record = self._rooms.pop(name, None)
        if record is None:
            return False
        record.closed = True
        for identity in list(record.agents):
            self._remove_agent(record, identity)
        return True

    def clear(self) -> None:
        for name in list(self._rooms):
            self.close(name)
        self.cancel_background()

    def cancel_background(self) -> None:
        """Stop the job launches and terminations under way (the server is going away)."""
        for task in list(self._background):
            task.cancel()

    # -- dispatches ----------------------------------------------------------------------

    def add_dispatch(self, record: RoomRecord, dispatch: AgentDispatch) -> AgentDispatch:
        dispatch.state.CopyFrom(AgentDispatchState(created_at=time.time_ns()))
        held = _Dispatch(dispatch)
        record.dispatches[dispatch.id] = held
        named = sum(1 for d in record.dispatches.values() if d.message.agent_name)
        record.peak_named_dispatches = max(record.peak_named_dispatches, named)
        task = asyncio.get_running_loop().create_task(self._launch(record, held))
        held.launching.add(task)
        task.add_done_callback(held.launching.discard)
        self._keep(task)
        return _copy(dispatch)

    def dispatches(self, record: RoomRecord, dispatch_id: str = "") -> list[AgentDispatch]:
        """ListDispatch's answer: copies, in no particular order."""
        found = [_copy(d.message) for d in record.dispatches.values() if not dispatch_id or d.message.id == dispatch_id]
        random.shuffle(found)
        return found

    def delete_dispatch(self, record: RoomRecord, dispatch_id: str) -> AgentDispatch | None:
        held = record.dispatches.pop(dispatch_id, None)
        if held is None:
            return None
        answer = _copy(held.message)
        self._keep(asyncio.get_running_loop().create_task(self._terminate_jobs(record, held)))
        return answer

    async def settle(self) -> None:
        """Until every job launch and termination under way has finished."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def agent_left(self, room: str, identity: str) -> None:
        record = self._rooms.get(room)
        if record is not None and identity in record.agents:
            self._remove_agent(record, identity)

    # -- jobs ----------------------------------------------------------------------------

    async def _launch(self, record: RoomRecord, held: _Dispatch) -> None:
        dispatch = held.message
        job = Job(
            id=guid(JOB_PREFIX),
            dispatch_id=dispatch.id,
            type=JobType.JT_ROOM,
            room=record.snapshot(),
            agent_name=dispatch.agent_name,
            metadata=dispatch.metadata,
            deployment=dispatch.deployment,
        )
        job.attributes.update(dispatch.attributes)
        state = await self._workers.request_job(job)
        if state is None:
            return
        job.state.CopyFrom(state)
        # Recorded on the dispatch even if it was deleted meanwhile: its termination waits for this.
        dispatch.state.jobs.append(job)
        identity = state.participant_identity
        if identity and not record.closed:
            now = time.time()
            participant = ParticipantInfo(
                sid=guid(PARTICIPANT_PREFIX),
                identity=identity,
                state=ParticipantInfo.State.ACTIVE,
                joined_at=int(now),
                joined_at_ms=int(now * 1000),
                kind=ParticipantInfo.Kind.AGENT,
            )
            participant.attributes[AGENT_NAME_ATTRIBUTE] = dispatch.agent_name
            record.agents[identity] = participant
            record.agent_jobs[identity] = job.id

    async def _terminate_jobs(self, record: RoomRecord, held: _Dispatch) -> None:
        while held.launching:
            await asyncio.gather(*list(held.launching), return_exceptions=True)
        for job in held.message.state.jobs:
            state = self._workers.terminate_job(job.id, TerminateReason.TERMINATION_REQUESTED)
            if state is None:
                continue
            if state.participant_identity in record.agents:
                self._remove_agent(record, state.participant_identity)
            job.state.CopyFrom(state)

    def _remove_agent(self, record: RoomRecord, identity: str) -> None:
        record.agents.pop(identity, None)
        job_id = record.agent_jobs.pop(identity, None)
        if job_id is not None:
            # RemoveParticipant tells the worker its agent left; a job that already ended is not found.
            self._workers.terminate_job(job_id, TerminateReason.AGENT_LEFT_ROOM)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _copy(dispatch: AgentDispatch) -> AgentDispatch:
    out = AgentDispatch()
    out.CopyFrom(dispatch)
    return out
