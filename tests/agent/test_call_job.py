"""The LiveKit adapter of CallJob, checked against livekit-agents' and livekit-rtc's own
classes: what reaches the room when the agent joins, and which tracks it subscribes to.

There is no LiveKit server here: rtc.Room's FFI connect is replaced by a recorder
(the options it receives are what the SFU would get), and the room's participants
and publications are small stand-ins for rtc's FFI-backed objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit import rtc
from livekit.agents.testing import fake_job_context

from agent.call_job import LiveKitCallJob, subscribe_audio


class _ConnectRecorded(Exception):
    pass


async def test_the_room_is_joined_subscribed_to_nothing() -> None:
    with fake_job_context() as ctx:
        ctx._connected = False  # a fake job starts "connected"; a real one does not
        sent: list[rtc.RoomOptions] = []

        async def connect(url: str, token: str, *, options: rtc.RoomOptions) -> None:
            sent.append(options)
            raise _ConnectRecorded  # no server to finish connecting to

        ctx.room.connect = connect  # type: ignore[method-assign]
        with pytest.raises(_ConnectRecorded):
            await LiveKitCallJob(ctx).connect()
    (options,) = sent
    # With auto-subscribe on, LiveKit would send the caller's audio before the session could use it.
    assert options.auto_subscribe is False


@dataclass
class Publication:
    sid: str
    kind: rtc.TrackKind.ValueType = rtc.TrackKind.KIND_AUDIO
    subscribed: list[bool] = field(default_factory=list)

    def set_subscribed(self, subscribed: bool) -> None:
        self.subscribed.append(subscribed)


@dataclass
class Participant:
    identity: str
    track_publications: dict[str, Publication] = field(default_factory=dict)


def _room(*participants: Participant) -> rtc.Room:
    room = rtc.Room()
    remote: Any = room.remote_participants
    remote.update({p.identity: p for p in participants})
    return room


async def test_the_callers_audio_is_subscribed_now_and_when_published_later() -> None:
    caller_mic = Publication("TR_caller_mic")
    caller_video = Publication("TR_caller_cam", kind=rtc.TrackKind.KIND_VIDEO)
    other_mic = Publication("TR_supervisor_mic")
    caller = Participant("sip_caller", {p.sid: p for p in (caller_mic, caller_video)})
    supervisor = Participant("supervisor", {other_mic.sid: other_mic})
    room = _room(caller, supervisor)

    subscribe_audio(room, "sip_caller")
    assert caller_mic.subscribed == [True]
    assert caller_video.subscribed == [] and other_mic.subscribed == []

    late_mic, late_other = Publication("TR_caller_mic_2"), Publication("TR_supervisor_mic_2")
    room.emit("track_published", late_mic, caller)
    room.emit("track_published", late_other, supervisor)
    assert late_mic.subscribed == [True]
    assert late_other.subscribed == []


async def test_without_a_known_caller_every_audio_track_is_subscribed() -> None:
    first, video = Publication("TR_a"), Publication("TR_v", kind=rtc.TrackKind.KIND_VIDEO)
    room = _room(Participant("a", {first.sid: first, video.sid: video}))
    subscribe_audio(room, None)
    later = Publication("TR_b")
    room.emit("track_published", later, Participant("b"))
    assert first.subscribed == [True] and later.subscribed == [True]
    assert video.subscribed == []


async def test_log_fields_are_added_to_the_jobs_log_context() -> None:
    with fake_job_context() as ctx:
        ctx.log_context_fields = {"room": "call-room"}
        LiveKitCallJob(ctx).annotate_logs({"trace_id": "EV_1"})
        assert ctx.log_context_fields == {"room": "call-room", "trace_id": "EV_1"}
