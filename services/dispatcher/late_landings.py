"""A create that lands after its request failed, reported to the call history.

DispatchAgent can fail while its CreateDispatch may still land: LiveKit gave no clear
answer and the dispatch did not show up before the caller's deadline ("a retry will find
it"), or the caller gave up mid-create. LiveKit may then still give the caller an agent.
A redelivery of the webhook finds that dispatch (`already_existed`) and the gateway
reports it; when none comes (LiveKit's deliveries were all used up), nobody would, and
the call's record would have no persona and read `no_agent` until the agent's join.

So after such a failure the reconciler keeps reading the room for the claim's settle
time (the time the exactly-one design already gives a create to land; reconcile.py's
`await_late_landing`), and once the dispatch carrying exactly the metadata this request
sent is the call's keeper and served by a worker, the dispatcher reports it to
CallHistoryService itself, as the gateway would have. The event id is the gateway's for
the same dispatch, `dispatch:` + the SIP join's webhook id (the job metadata's trace id),
so a gateway report after a redelivery is the same event, recorded once. A dispatch that
lands without a worker taking it is not reported, as the gateway does not report one
either: the caller got no agent.

Only done where the dispatcher knows a CallHistoryService (CALLS_TARGET): the rounds are
extra LiveKit reads at a time LiveKit is slow.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from friday.calls.v1.call_pb2 import CallEvent, CallEventKind, DispatchFacts
from friday.persona.v1.persona_pb2 import PersonaSource
from services.common import job_metadata
from services.common.versions import content_version
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.transport import DispatchRecord

logger = logging.getLogger(__name__)

# Late landings awaited at most: each failed create is a call, and LiveKit failing every create
# for a while must not grow this without bound.
MAX_WATCHED = 1000
DEFAULT_PERSONA_REASON = "dispatched with the default persona (its request failed before the gateway could say why)"


class CallHistoryReports(Protocol):
    """Where a late landing is told (CallHistoryService's RecordCallEvent, call_history.py)."""

    async def dispatched(self, event: CallEvent) -> None:
        """Records the event; raises when it could not be recorded."""
        ...

    async def aclose(self) -> None: ...


def dispatched_event(record: DispatchRecord) -> CallEvent:
    """The DISPATCHED event of a dispatch whose metadata is ours, as the gateway builds it."""
    metadata = job_metadata.decode(record.metadata)
    source = metadata.persona_source
    job = record.live_job
    event = CallEvent(
        event_id=f"dispatch:{metadata.trace_id or record.dispatch_id}",
        kind=CallEventKind.CALL_EVENT_KIND_DISPATCHED,
        room=record.room,
        dispatch=DispatchFacts(
            persona_id=metadata.persona.persona_id,
            persona_version=metadata.persona.version or content_version(metadata.persona),
            persona_source=PersonaSource.Name(source),
            default_reason=DEFAULT_PERSONA_REASON if source == PersonaSource.PERSONA_SOURCE_DEFAULT else "",
            dispatch_id=record.dispatch_id,
            job_id=job.job_id if job is not None else "",
            already_existed=False,
        ),
    )
    # Our clock, as the gateway's: it orders dispatch facts, never answer times.
    event.occurred_at.FromNanoseconds(time.time_ns())
    return event


class LateLandingReports:
    """Tells the call history of our dispatches that landed after their request failed
    (the reconciler finds them: it keeps reading such a room for the settle time)."""

    def __init__(self, reports: CallHistoryReports, metrics: DispatcherMetrics) -> None:
        self._reports = reports
        self._metrics = metrics

    def not_watched(self, room: str) -> None:
        self._metrics.late_landings.labels("not_watched").inc()
        logger.warning("not watching room %r for a late dispatch: %d rooms are watched already", room, MAX_WATCHED)

    def none_served(self) -> None:
        """The settle time passed (or the call ended) with no dispatch of ours served."""
        self._metrics.late_landings.labels("none").inc()

    async def report(self, landed: DispatchRecord) -> None:
        logger.warning(
            "dispatch %s of %r to %r landed after its request failed; reporting it to the call history",
            landed.dispatch_id,
            landed.agent_name,
            landed.room,
        )
        try:
            await self._reports.dispatched(dispatched_event(landed))
        except job_metadata.JobMetadataError as exc:
            # Ours by its exact text, which this dispatcher validated before sending it.
            logger.error("late dispatch %s carries metadata that does not decode: %s", landed.dispatch_id, exc)
            self._metrics.late_landings.labels("not_reported").inc()
        except Exception as exc:
            logger.warning("could not report late dispatch %s to the call history: %s", landed.dispatch_id, exc)
            self._metrics.late_landings.labels("not_reported").inc()
        else:
            self._metrics.late_landings.labels("reported").inc()

    async def aclose(self) -> None:
        await self._reports.aclose()
