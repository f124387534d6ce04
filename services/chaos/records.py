"""The call records a fault run must leave: every simulated call has exactly one record in
CallHistoryService, with the outcome its lifecycle implies and the persona its agent got.

What a call's record must say follows from the webhooks the run sent, with LiveKit's
timestamps (services/calls/records.py decides the same way):

    an agent joined within no_agent_seconds of the caller   → answered
    the caller hung up first, inside that time              → abandoned
    neither                                                 → no_agent

Its dispatch facts are the gateway's own dispatch result (docs/architecture.md, "Call
history"; services/webhook_gateway/call_events.py, from_dispatch), which the gateway
reports exactly when it answers LiveKit `dispatched`:

    a delivery answered `dispatched`  → the persona of the agent LiveKit holds (or, with
                                        no single agent to judge, one the gateway answered)
    none was                          → no dispatch facts

A dispatch the gateway never confirmed can still exist: a create whose answer never came
(the gateway answered 503) that lands after LiveKit's last redelivery. The call then has
an agent whose dispatch result the gateway never received; DispatcherService, which kept
watching the room, reports that dispatch itself (services/dispatcher/late_landings.py), so
the record must show the agent's persona all the same. The runner counts such calls
(FaultResult.unconfirmed_agents) and fails any whose delivery was answered 2xx: only a
webhook LiveKit gave up on may leave one.

The records are read back over the service's own gRPC API (ListCalls, every page), as an
operator's tools read them, never from its database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1.call_pb2 import Call, CallOutcome
from services.calls.client import CallsClient
from services.calls.records import OUTCOME_LABELS

ANSWERED = OUTCOME_LABELS[CallOutcome.CALL_OUTCOME_ANSWERED]
NO_AGENT = OUTCOME_LABELS[CallOutcome.CALL_OUTCOME_NO_AGENT]
ABANDONED = OUTCOME_LABELS[CallOutcome.CALL_OUTCOME_ABANDONED]
# The gateway reports off the call path, with retries (5 attempts, up to 2 s each, backoff to
# 5 s): past this, an event that has not arrived never will.
DEFAULT_WAIT_SECONDS = 20.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class SimulatedCall:
    """What LiveKit told the gateway about one call: the facts its record must show."""

    room: str
    sip_call_id: str
    sip_joined_ms: int
    agent_joined_ms: int | None  # None: no agent join was sent (no agent ever took the job)
    ended_ms: int | None  # the hang-up's createdAt; None: not hung up
    persona_id: str | None  # the persona of the agent LiveKit holds; None: no agent to judge
    # The personas the gateway answered LiveKit `dispatched` with, and so reported as the
    # call's dispatch facts; empty when no delivery was answered `dispatched`.
    reported_personas: frozenset[str]

    @property
    def expected_persona(self) -> str | None:
        """The persona the record's dispatch facts must show; "" for none, None for any
        of `reported_personas` (no single agent to judge). With no delivery answered
        `dispatched`, an agent LiveKit holds came of a create that landed late, which the
        dispatcher reports: its persona; no agent, no facts."""
        if not self.reported_personas:
            return self.persona_id or ""
        return self.persona_id

    def expected_outcome(self, no_agent_seconds: float) -> str:
        limit_ms = self.sip_joined_ms + round(no_agent_seconds * 1000)
        if self.agent_joined_ms is not None and self.agent_joined_ms <= limit_ms:
            return ANSWERED
        if self.agent_joined_ms is None and self.ended_ms is not None and self.ended_ms < limit_ms:
            return ABANDONED
        return NO_AGENT


@dataclass(frozen=True)
class RecordVerdict:
    found: int  # records naming this call (its room or its SIP call id)
    expected_outcome: str
    outcome: str = ""  # the record's outcome ("" when not exactly one record, or undecided)
    wrong_outcome: bool = False
    wrong_persona: bool = False
    # One record that shows the whole call: decided, and ended if the caller hung up.
    complete: bool = False
    why: str = ""
    shows: str = ""  # what the call's one record shows (describe), for a failure message

    @property
    def wrong(self) -> bool:
        """The call's one record does not show what happened (an unended record counts)."""
        return self.found == 1 and (self.wrong_outcome or self.wrong_persona or not self.complete)


@dataclass(frozen=True)
class RecordCheck:
    verdicts: dict[str, RecordVerdict]  # by room
    extra: list[str]  # records no simulated call accounts for, or a second one for a call

    @property
    def complete(self) -> bool:
        return all(v.complete for v in self.verdicts.values())


async def list_all(client: CallsClient) -> list[Call]:
    """Every call record the service lists, page by page."""
    calls: list[Call] = []
    token = ""
    while True:
        page = await client.list_calls(pb.ListCallsRequest(page_size=500, page_token=token))
        calls.extend(page.calls)
        token = page.next_page_token
        if not token:
            return calls


def judge(simulated: Sequence[SimulatedCall], records: Sequence[Call], no_agent_seconds: float) -> RecordCheck:
    """A call's record is the one under its room; any other record naming the call (by its
    SIP call id) duplicates it, and a record naming no simulated call is extra."""
    by_room = {call.room: call for call in simulated}
    by_sip_id = {call.sip_call_id: call for call in simulated if call.sip_call_id}
    found: Counter[str] = Counter()
    mine: dict[str, Call] = {}
    extra: list[str] = []
    for record in records:
        if record.room in by_room:
            found[record.room] += 1
            mine[record.room] = record
        elif (owner := by_sip_id.get(record.sip_call_id)) is not None:
            extra.append(f"{record.room}: a second record of {owner.room} (SIP call id {record.sip_call_id})")
        else:
            extra.append(f"{record.room}: a record of no simulated call")
    verdicts = {}
    for call in simulated:
        expected = call.expected_outcome(no_agent_seconds)
        own = mine.get(call.room)
        if own is None or found[call.room] != 1:
            verdicts[call.room] = RecordVerdict(found[call.room], expected, why=f"{found[call.room]} records")
            continue
        outcome = OUTCOME_LABELS.get(own.outcome, "")
        wrong_outcome = outcome != expected
        wrong_persona = _wrong_dispatch_facts(call, own)
        ended = call.ended_ms is None or own.HasField("ended_at")
        why = ""
        if not ended:
            why = "not ended"
        elif wrong_outcome:
            why = f"outcome {outcome or 'undecided'}, expected {expected} (ended by {own.end_reason or '-'})"
        elif wrong_persona and not call.reported_personas and call.persona_id:
            why = f"persona {own.dispatch.persona_id or '-'!r}, the agent of a late create has {call.persona_id!r}"
        elif wrong_persona and not call.reported_personas:
            why = f"persona {own.dispatch.persona_id!r}, but the gateway answered no delivery `dispatched`"
        elif wrong_persona and call.persona_id is None:
            why = f"persona {own.dispatch.persona_id or '-'!r}, the gateway answered {sorted(call.reported_personas)}"
        elif wrong_persona:
            why = f"persona {own.dispatch.persona_id or '-'!r}, the agent has {call.persona_id!r}"
        verdicts[call.room] = RecordVerdict(
            1,
            expected,
            outcome,
            wrong_outcome,
            wrong_persona,
            complete=ended and bool(outcome),
            why=why,
            shows=describe(own),
        )
    return RecordCheck(verdicts, extra)


def _wrong_dispatch_facts(call: SimulatedCall, record: Call) -> bool:
    shown = record.dispatch.persona_id
    expected = call.expected_persona
    if expected is None:
        return shown not in call.reported_personas
    if expected == "":
        return bool(shown or record.dispatch.dispatch_id)
    return shown != expected


def describe(record: Call | None) -> str:
    """What a record shows, for a failure message."""
    if record is None:
        return "no record"
    facts = record.dispatch
    dispatch = (
        f"dispatch {facts.dispatch_id or '-'} persona {facts.persona_id or '-'} job {facts.job_id or '-'}"
        if facts.persona_id or facts.dispatch_id
        else "no dispatch facts"
    )
    outcome = OUTCOME_LABELS.get(record.outcome, "undecided")
    agent = record.agent_identity or "-"
    ended = record.end_reason or ("ended" if record.HasField("ended_at") else "not ended")
    return f"record: {outcome}, {dispatch}, agent {agent}, {ended}"


async def check_records(
    target: str,
    simulated: Sequence[SimulatedCall],
    no_agent_seconds: float,
    *,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> RecordCheck:
    """Reads the records until every call's is complete, or `wait_seconds` passed (a bound for
    events that never come, not a timing assumption), and judges what is there then."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait_seconds
    async with CallsClient(target) as client:
        while True:
            check = judge(simulated, await list_all(client), no_agent_seconds)
            if (check.complete and not any(v.wrong for v in check.verdicts.values())) or loop.time() > give_up:
                return check
            await asyncio.sleep(POLL_SECONDS)
