"""The LiveKit job as answering a call uses it: the room, the caller in it, the
session's place in it, and the job's log context.

Everything the agent does in the room goes through `CallJob`, so the order of the
steps is decided in one place (worker.answer_call) and tests can stand in for
LiveKit here (services/testing/agent_job.py) with the rest of the path real.
`LiveKitCallJob` is the adapter on a livekit-agents `JobContext`.

Why the order matters: livekit/sip keeps the caller hearing ringing until the call
is answered, and what answers it is the SIP bridge subscribing to an audio track
someone else published — the agent's, which RoomIO publishes when the session
starts — after which it sends 200 OK. Whatever the agent still does after that is
silence on the line. So the session is started only once everything it needs
exists, the spoken greeting's first audio included (agent/greeting_audio.py). The
room is joined subscribed to nothing and the caller's audio is subscribed to only
when the session can speak the greeting: nothing of the caller is received before
there is a session to hear it, and no step before the greeting waits on the
caller's media. See docs/architecture.md, "LiveKit webhooks" and "Agents".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import Agent, AgentSession, AutoSubscribe, JobContext, room_io
from livekit.agents.utils import wait_for_participant

from agent.sip_transfer import transfer_sip_participant

logger = logging.getLogger(__name__)

CALL_ENDED_REASON = "call action ended the call"


@dataclass(frozen=True)
class Caller:
    """The caller's SIP participant, as far as the agent needs it."""

    identity: str
    attributes: Mapping[str, str] = field(default_factory=dict)


class CallJob(Protocol):
    async def connect(self) -> None:
        """Join the room subscribed to nothing: no track of anyone is received yet."""

    async def wait_for_caller(self, identity: str | None) -> Caller:
        """The caller's SIP participant (the one with `identity`, if given) once it is in
        the room. Subscribes to nothing. Raises RuntimeError when the room is gone."""

    async def start_session(self, session: AgentSession, agent: Agent, caller: Caller | None) -> None:
        """Start `session` in the room with `agent`, talking to `caller` (or, with None,
        to whoever LiveKit's RoomIO links first)."""

    def subscribe_caller_audio(self, caller: Caller | None) -> None:
        """Receive the caller's audio from now on: the tracks published already and any
        published later. With None, every participant's audio."""

    def annotate_logs(self, fields: Mapping[str, Any]) -> None:
        """Add fields to every log line of this job."""

    async def transfer_caller(self, caller: Caller, transfer_to: str) -> None:
        """Transfer the caller's SIP leg to `transfer_to` (E.164 or a sip: URI) with
        LiveKit's TransferSIPParticipant; returns once LiveKit says it is done.
        Raises when the transfer failed."""

    async def end_call(self) -> None:
        """Hang up for everyone: delete the room (LiveKit's SIP service sends BYE) and end the job."""


class LiveKitCallJob:
    """`CallJob` on a livekit-agents JobContext."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    async def connect(self) -> None:
        # SUBSCRIBE_ALL (the default, and what ctx.wait_for_participant connects with)
        # would receive the caller before the session could use it.
        await self._ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)

    async def wait_for_caller(self, identity: str | None) -> Caller:
        participant = await wait_for_participant(
            self._ctx.room, identity=identity, kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP
        )
        return Caller(identity=participant.identity, attributes=dict(participant.attributes))

    async def start_session(self, session: AgentSession, agent: Agent, caller: Caller | None) -> None:
        # The caller hanging up ends the session; the room has no other use after that.
        options = room_io.RoomOptions(delete_room_on_close=True)
        if caller is not None:
            # Talk to the caller even if someone else (a supervisor, a recorder) joined first.
            options.participant_identity = caller.identity
        await session.start(agent=agent, room=self._ctx.room, room_options=options)

    def subscribe_caller_audio(self, caller: Caller | None) -> None:
        subscribe_audio(self._ctx.room, None if caller is None else caller.identity)

    def annotate_logs(self, fields: Mapping[str, Any]) -> None:
        self._ctx.log_context_fields = {**self._ctx.log_context_fields, **fields}

    async def transfer_caller(self, caller: Caller, transfer_to: str) -> None:
        await transfer_sip_participant(
            self._ctx.api, room=self._ctx.room.name, identity=caller.identity, target=transfer_to
        )

    async def end_call(self) -> None:
        await self._ctx.delete_room()
        self._ctx.shutdown(reason=CALL_ENDED_REASON)


def subscribe_audio(room: rtc.Room, identity: str | None) -> None:
    """Subscribe to the audio tracks of `identity` (every participant's with None) that
    are published, and to those published from now on."""

    def wanted(publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> bool:
        return publication.kind == rtc.TrackKind.KIND_AUDIO and identity in (None, participant.identity)

    def on_track_published(publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if wanted(publication, participant):
            publication.set_subscribed(True)

    # Registered first: a track published while the existing ones are walked is not missed.
    room.on("track_published", on_track_published)
    subscribed = 0
    for participant in list(room.remote_participants.values()):
        for publication in list(participant.track_publications.values()):
            if wanted(publication, participant):
                publication.set_subscribed(True)
                subscribed += 1
    logger.info(
        "subscribed to the caller's audio", extra={"participant_identity": identity or "", "tracks": subscribed}
    )
