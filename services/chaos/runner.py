"""Runs one fault: warm the WARM numbers, break the mesh, send the calls (spread
over an arrival window, each redelivered on LiveKit's schedule), let in-flight work
land, then count what LiveKit ended up holding for every call and, with the mesh's
CallHistoryService, check every call's record (records.py).

Each call is the lifecycle LiveKit reports: the caller's SIP join; our agent's join once
LiveKit holds a live job for the call (stamped when the runner sees it, with the job's
participant identity); then, once the last call has arrived, the caller's participant_left
and room_finished. All go through the room's one FIFO queue per URL, with LiveKit's
retries, and to both URLs when the fault delivers twice. The stand-in keeps the room
afterwards, so that what the call was left with can still be counted."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import grpc
from livekit.protocol.agent import JobStatus

from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common.livekit_names import DEFAULT_AGENT_NAME, SipAttribute
from services.testing.livekit_webhooks import (
    agent_participant_joined,
    room_finished,
    sip_participant_joined,
    sip_participant_left,
)
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_SECRET, Mesh

from .calls import NumberKind, PersonaVerdict, PlannedCall, judge_persona, numbers, plan_calls
from .faults import DeliveryMode, Fault, Step
from .records import DEFAULT_WAIT_SECONDS, RecordVerdict, SimulatedCall, check_records
from .redelivery import Delivery, WebhookSender

AGENT_NAME = DEFAULT_AGENT_NAME
DEFAULT_ARRIVAL_SECONDS = 3.0
# After its SIP join was answered 2xx, how long a call may wait for LiveKit to show the job
# a worker took: the gateway answers 2xx only once a worker holds it, so this is a bound.
AGENT_JOB_WAIT_SECONDS = 2.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class CallOutcome:
    call: PlannedCall
    deliveries: list[Delivery]  # the SIP join's (two when delivered twice)
    agent_join: Delivery | None = None  # our agent's join, at the first URL
    # Every later lifecycle webhook (agent join, participant_left, room_finished) at every URL.
    lifecycle: list[Delivery] = field(default_factory=list)
    sip_call_id: str = ""
    sip_joined_ms: int = 0  # LiveKit's joinedAtMs of the caller
    agent_joined_ms: int | None = None  # of the agent join sent; None: none was
    ended_ms: int | None = None  # createdAt of the caller's participant_left
    dispatches: int = 0
    # The most dispatches of our agent the room held at once: above `dispatches`, a double was healed.
    peak_dispatches: int = 0
    persona: PersonaVerdict | None = None
    record: RecordVerdict | None = None  # None when the mesh ran no CallHistoryService

    def simulated(self) -> SimulatedCall:
        return SimulatedCall(
            room=self.call.room,
            sip_call_id=self.sip_call_id,
            sip_joined_ms=self.sip_joined_ms,
            agent_joined_ms=self.agent_joined_ms,
            ended_ms=self.ended_ms,
            persona_id=self.persona.persona_id if self.persona is not None and self.dispatches == 1 else None,
            reported_personas=self.reported_personas,
        )

    @property
    def reported_personas(self) -> frozenset[str]:
        """The personas the gateway answered `dispatched` with (and so reported to the call
        history, services/webhook_gateway/app.py); empty: it confirmed no dispatch."""
        return frozenset(
            str(answer.get("persona_id", ""))
            for delivery in self.deliveries
            for status, answer in zip(delivery.statuses, delivery.answers, strict=True)
            if status is not None and 200 <= status < 300 and answer.get("status") == "dispatched"
        )

    @property
    def unconfirmed_agent(self) -> bool:
        """LiveKit holds an agent for the call although the gateway answered no delivery
        `dispatched`: a create the gateway gave up on landed after all (docs/architecture.md,
        "DispatchAgent, step by step", 5), so the gateway never had a dispatch result to report;
        the dispatcher reports it (step 12)."""
        return self.dispatches > 0 and not self.reported_personas

    @property
    def seconds_to_dispatch(self) -> float | None:
        times = [d.seconds_to_2xx for d in self.deliveries if d.seconds_to_2xx is not None]
        return min(times) if times else None

    @property
    def redelivered(self) -> bool:
        return any(d.attempts > 1 for d in self.deliveries)

    @property
    def refused(self) -> bool:
        """LiveKit stops at a 4xx: a call refused this way is never retried."""
        return any(d.final_status is not None and 400 <= d.final_status < 500 for d in self.deliveries)


@dataclass
class FaultResult:
    fault: str
    outcomes: list[CallOutcome]
    problems: list[str] = field(default_factory=list)
    # Evidence that the fault really happened, read from the stand-ins after the run.
    livekit_5xx: int = 0
    crm_requests: int = 0
    # DispatcherService's claims taken in process while Redis was unreachable (in-process dispatcher only).
    degraded_claims: int = 0
    # Call records nobody simulated, or a second one of a call; None: records were not checked.
    extra_records: list[str] | None = None
    seconds: float = 0.0  # the whole row, set-up to check

    @property
    def records_checked(self) -> bool:
        return self.extra_records is not None

    @property
    def records(self) -> int:
        """Calls with exactly one record."""
        return sum(o.record is not None and o.record.found == 1 for o in self.outcomes)

    @property
    def records_missing(self) -> int:
        return sum(o.record is not None and o.record.found == 0 for o in self.outcomes)

    @property
    def records_extra(self) -> int:
        return len(self.extra_records or ())

    @property
    def records_wrong_outcome(self) -> int:
        return sum(o.record is not None and o.record.wrong and not o.record.wrong_persona for o in self.outcomes)

    @property
    def records_wrong_persona(self) -> int:
        return sum(o.record is not None and o.record.wrong_persona for o in self.outcomes)

    @property
    def records_wrong(self) -> int:
        return sum(o.record is not None and o.record.wrong for o in self.outcomes)

    def outcome_count(self, outcome: str) -> int:
        return sum(o.record is not None and o.record.found == 1 and o.record.outcome == outcome for o in self.outcomes)

    @property
    def records_failed(self) -> bool:
        """A call without its one right record, or a record too many."""
        return self.records_missing > 0 or self.records_wrong > 0 or self.records_extra > 0

    @property
    def failed(self) -> bool:
        """The row fails: a call lost, doubled, given the wrong persona, or recorded wrongly."""
        return bool(self.zero_dispatch or self.multi_dispatch or self.wrong_persona or self.records_failed)

    @property
    def calls(self) -> int:
        return len(self.outcomes)

    @property
    def zero_dispatch(self) -> int:
        return sum(o.dispatches == 0 for o in self.outcomes)

    @property
    def multi_dispatch(self) -> int:
        return sum(o.dispatches > 1 for o in self.outcomes)

    @property
    def healed_doubles(self) -> int:
        """Calls that held two dispatches of our agent at some point and were left with one."""
        return sum(o.peak_dispatches > 1 and o.dispatches == 1 for o in self.outcomes)

    @property
    def wrong_persona(self) -> int:
        return sum(o.persona is not None and o.persona.wrong for o in self.outcomes)

    @property
    def defaults(self) -> int:
        return sum(o.persona is not None and o.persona.used_default for o in self.outcomes)

    @property
    def redelivered(self) -> int:
        return sum(o.redelivered for o in self.outcomes)

    @property
    def refused(self) -> int:
        return sum(o.refused for o in self.outcomes)

    @property
    def unconfirmed_agents(self) -> int:
        """Calls with an agent whose dispatch the gateway never confirmed (CallOutcome.unconfirmed_agent)."""
        return sum(o.unconfirmed_agent for o in self.outcomes)

    @property
    def unanswered(self) -> int:
        """Calls whose every delivery ended without a 2xx (LiveKit gave up on them)."""
        return sum(o.seconds_to_dispatch is None for o in self.outcomes)

    @property
    def p99_seconds(self) -> float | None:
        return percentile([t for o in self.outcomes if (t := o.seconds_to_dispatch) is not None], 0.99)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def run_fault(
    fault: Fault,
    calls: int = 100,
    *,
    arrival_seconds: float = DEFAULT_ARRIVAL_SECONDS,
    before_records: Step | None = None,
    records_wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> FaultResult:
    """`before_records` runs once the calls are over, before their records are read (a test
    that takes a record away, as a faulty recorder would)."""
    started = time.monotonic()
    async with Mesh(fault.mesh) as mesh:
        pool = numbers()
        for number in pool:
            if number.kind is not NumberKind.UNKNOWN:
                mesh.crm.set_persona(number.national, number.crm_body())
        await _warm(mesh, [n.e164 for n in pool if n.kind is NumberKind.WARM])
        await asyncio.sleep(mesh.persona_config.cache.ttl_seconds + 0.1)  # warm copies are now stale

        planned = plan_calls(fault.name, calls, pool)
        if fault.begin is not None:
            await fault.begin(mesh)
        during: asyncio.Future[None] | None = (
            asyncio.ensure_future(fault.during(mesh)) if fault.during is not None else None
        )
        spacing = arrival_seconds / max(1, calls)
        # Calls last longer than the arrival window, as real ones do: every caller hangs up once
        # the last call has arrived, so the hang-ups do not crowd the calls still arriving.
        hang_up_at = asyncio.get_running_loop().time() + arrival_seconds
        # Two webhook URLs, for the faults that deliver everything twice; the others use the first.
        urls = [WebhookSender(mesh.http, mesh.webhook_url, WEBHOOK_KEY, WEBHOOK_SECRET) for _ in range(2)]
        try:
            outcomes = await asyncio.gather(
                *(
                    _place_call(mesh, urls, call, fault.delivery, delay=call.index * spacing, hang_up_at=hang_up_at)
                    for call in planned
                )
            )
        finally:
            for url in urls:
                await url.aclose()
            if during is not None:
                await during
        await asyncio.sleep(fault.settle_seconds)
        result = FaultResult(fault.name, list(outcomes))
        result.livekit_5xx = sum(call.status >= 500 for call in mesh.livekit.calls)
        result.crm_requests = mesh.crm.total_requests
        if mesh.dispatcher.server is not None:
            sample = mesh.dispatcher.server.registry.get_sample_value("friday_dispatcher_degraded_claims_total")
            result.degraded_claims = int(sample or 0)
        _count_dispatches(mesh, fault, result)
        if mesh.calls_target is not None:
            if before_records is not None:
                await before_records(mesh)
            await _check_records(mesh, result, records_wait_seconds)
    result.seconds = time.monotonic() - started
    return result


async def _check_records(mesh: Mesh, result: FaultResult, wait_seconds: float) -> None:
    assert mesh.calls_target is not None
    check = await check_records(
        mesh.calls_target,
        [o.simulated() for o in result.outcomes],
        mesh.calls_config.no_agent_seconds,
        wait_seconds=wait_seconds,
    )
    result.extra_records = check.extra
    result.problems.extend(check.extra)
    for outcome in result.outcomes:
        outcome.record = check.verdicts[outcome.call.room]
        if outcome.record.found != 1 or outcome.record.wrong:
            result.problems.append(
                f"{outcome.call.room}: call record: {outcome.record.why} "
                f"[{outcome.record.shows or 'no single record'}; {_what_the_run_saw(mesh, outcome)}]"
            )


def _what_the_run_saw(mesh: Mesh, outcome: CallOutcome) -> str:
    """For a failure message: each delivery of the call's SIP join (statuses, the last
    answer), whether our agent's join was sent, and the dispatches LiveKit holds for it,
    timed against the caller's join and the gateway's last answer."""
    wall_minus_monotonic = time.time() - time.monotonic()
    parts = []
    last_answer = max((d.last_answered for d in outcome.deliveries if d.last_answered is not None), default=None)
    for delivery in outcome.deliveries:
        last = delivery.answers[-1] if delivery.answers else {}
        said = last.get("status") or last.get("transport_error") or "-"
        detail = str(last.get("detail") or last.get("persona_id") or "")[:160]
        parts.append(
            f"delivery {delivery.event_id} {delivery.statuses}"
            + (f" dropped {delivery.dropped}" if delivery.dropped else "")
            + f" last {said}: {detail}"
        )
    parts.append(
        "agent join not sent"
        if outcome.agent_joined_ms is None
        else f"agent join sent +{(outcome.agent_joined_ms - outcome.sip_joined_ms) / 1000:.1f} s"
    )
    held = [d for d in mesh.livekit.dispatches(outcome.call.room) if d.agent_name == AGENT_NAME]
    if not held:
        parts.append("LiveKit holds no dispatch of our agent")
    for dispatch in held:
        created_s = dispatch.state.created_at / 1e9
        when = f"created +{created_s - outcome.sip_joined_ms / 1000:.1f} s after the SIP join"
        if last_answer is not None:
            when += f", {created_s - (last_answer + wall_minus_monotonic):+.1f} s from the gateway's last answer"
        jobs = ",".join(f"{job.id} {JobStatus.Name(job.state.status)}" for job in dispatch.state.jobs) or "no job"
        persona = judge_persona(outcome.call, dispatch.metadata, ()).persona_id
        parts.append(f"LiveKit holds {dispatch.id} ({when}; {jobs}; persona {persona})")
    return "; ".join(parts)


async def _warm(mesh: Mesh, dialed: list[str]) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.persona.port}") as channel:
        stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        for number in dialed:
            reply = await stub.GetPersona(persona_service_pb2.GetPersonaRequest(dialed_number=number), timeout=5)
            if not reply.persona.persona_id.startswith("crm-"):
                raise RuntimeError(f"warm-up of {number} got {reply.persona.persona_id!r}")


async def _place_call(
    mesh: Mesh, urls: list[WebhookSender], call: PlannedCall, mode: DeliveryMode, *, delay: float, hang_up_at: float
) -> CallOutcome:
    await asyncio.sleep(delay)
    mesh.livekit.create_room(call.room)  # the caller is in the room before LiveKit sends the join
    event = sip_participant_joined(room=call.room, dialed_number=call.dialed, caller_number="+14155550100")
    sip_joined_ms = event.participant.joined_at_ms
    senders = urls[: 2 if mode is DeliveryMode.TWICE else 1]
    agent_first: asyncio.Future[Delivery] | None = None
    agent_joined_ms: int | None = None
    if mode is DeliveryMode.AGENT_FIRST:
        # One FIFO queue per room: the SIP join is sent once the agent's join is settled. The
        # agent joined after the caller; only its webhook came first.
        agent_joined_ms = sip_joined_ms + 1
        agent_first = urls[0].queue(agent_participant_joined(room=call.room, joined_at_ms=agent_joined_ms))
    deliveries = list(await asyncio.gather(*(url.queue(event) for url in senders)))
    outcome = CallOutcome(
        call,
        deliveries,
        await agent_first if agent_first is not None else None,
        sip_call_id=event.participant.attributes[SipAttribute.CALL_ID],
        sip_joined_ms=sip_joined_ms,
        agent_joined_ms=agent_joined_ms,
    )
    if agent_first is None:
        answered = any(d.delivered for d in deliveries)
        identity = await _agent_identity(mesh, call.room, AGENT_JOB_WAIT_SECONDS if answered else 0.0)
        if identity is not None:
            outcome.agent_joined_ms = wall_clock_ms()
            joined = agent_participant_joined(room=call.room, joined_at_ms=outcome.agent_joined_ms, identity=identity)
            agent_joins = await asyncio.gather(*(url.queue(joined) for url in senders))
            outcome.agent_join = agent_joins[0]
            outcome.lifecycle.extend(agent_joins)
    # The caller hangs up; LiveKit closes the room once it is empty.
    await asyncio.sleep(max(0.0, hang_up_at - asyncio.get_running_loop().time()))
    left = sip_participant_left(event)
    outcome.ended_ms = left.created_at * 1000
    finished = room_finished(room=call.room)
    endings = [url.queue(e) for url in senders for e in (left, finished)]
    outcome.lifecycle.extend(await asyncio.gather(*endings))
    return outcome


async def _agent_identity(mesh: Mesh, room: str, wait_seconds: float) -> str | None:
    """The participant identity of a job a worker holds for our agent in `room`, once there is one."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait_seconds
    while True:
        for dispatch in mesh.livekit.dispatches(room):
            if dispatch.agent_name != AGENT_NAME:
                continue
            for job in dispatch.state.jobs:
                if job.state.status in _LIVE_JOB and job.state.participant_identity:
                    return job.state.participant_identity
        if loop.time() >= give_up:
            return None
        await asyncio.sleep(0.05)


_LIVE_JOB = (JobStatus.JS_PENDING, JobStatus.JS_RUNNING)


def _count_dispatches(mesh: Mesh, fault: Fault, result: FaultResult) -> None:
    """A call's agents are its dispatches whose job a worker holds: a dispatch nobody took
    is no agent (the caller rings out), so it counts as a problem, not as served."""
    for outcome in result.outcomes:
        ours = [d for d in mesh.livekit.dispatches(outcome.call.room) if d.agent_name == AGENT_NAME]
        dispatches = [d for d in ours if any(job.state.status in _LIVE_JOB for job in d.state.jobs)]
        if len(ours) != len(dispatches):
            result.problems.append(f"{outcome.call.room}: {len(ours) - len(dispatches)} dispatches without an agent")
        outcome.dispatches = len(dispatches)
        outcome.peak_dispatches = mesh.livekit.peak_dispatches(outcome.call.room)
        if dispatches:
            outcome.persona = judge_persona(outcome.call, dispatches[0].metadata, fault.default_allowed_for)
            if outcome.persona.wrong:
                said = [
                    a.get("default_reason") for d in outcome.deliveries for a in d.answers if a.get("default_reason")
                ]
                result.problems.append(
                    f"{outcome.call.room} ({outcome.call.dialed}): {outcome.persona.why}; gateway said {said}"
                )
        if outcome.unconfirmed_agent and any(d.delivered for d in outcome.deliveries):
            # The gateway confirms (answers `dispatched`, and reports) every dispatch it makes
            # sure of; a 2xx that is not that while an agent exists means a dispatch result
            # was lost. Only a delivery LiveKit gave up on may leave an agent unconfirmed.
            answers = [d.answers[-1].get("status") for d in outcome.deliveries if d.answers]
            result.problems.append(f"{outcome.call.room}: an agent, but the gateway answered {answers}")
        if outcome.dispatches != 1:
            statuses = [d.statuses for d in outcome.deliveries]
            result.problems.append(f"{outcome.call.room}: {outcome.dispatches} dispatches, deliveries {statuses}")
        if outcome.agent_join is not None:
            answer = outcome.agent_join.answers[-1] if outcome.agent_join.answers else {}
            if outcome.agent_join.final_status != 200 or answer.get("status") != "ignored":
                result.problems.append(f"{outcome.call.room}: agent join answered {outcome.agent_join.statuses}")
        for delivery in outcome.lifecycle:
            # No dispatch comes of these: the gateway takes them once and answers 200 at once.
            if delivery.final_status != 200:
                result.problems.append(f"{outcome.call.room}: {delivery.event_id} answered {delivery.statuses}")
