"""CallFlow on its own, with fake PersonaService / DispatcherService ports: what it
asks them, what it dispatches, and what it tells the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from friday.dispatcher.v1.dispatcher_service_pb2 import Dispatch, DispatchAgentRequest, DispatchAgentResponse
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason, GetPersonaResponse
from services.common import job_metadata
from services.common.default_persona import default_persona
from services.webhook_gateway.call_flow import CallFlow, Dispatched, DispatchFailed, Duplicate, RoomGone
from services.webhook_gateway.dedupe import InProcessEventLedger
from services.webhook_gateway.errors import UpstreamError
from services.webhook_gateway.events import SipCall

AGENT = "friday-ai-agent"
ASHA = Persona(persona_id="xeny", display_name="Asha", personality="You are Asha.")


def _call(event_id: str = "EV_1", dialed: str = "08655701159", trunk: str = "ST_1") -> SipCall:
    return SipCall(
        event_id=event_id,
        room="call-1",
        participant_identity="sip_caller",
        dialed_number=dialed,
        caller_number="+14155550100",
        sip_call_id="SCL_1",
        sip_trunk_id=trunk,
    )


@dataclass
class FakePersonas:
    answer: GetPersonaResponse | UpstreamError = field(
        default_factory=lambda: GetPersonaResponse(
            persona=ASHA, source=PersonaSource.PERSONA_SOURCE_CRM, normalized_number="+918655701159"
        )
    )
    asked: list[tuple[str, float]] = field(default_factory=list)

    async def get_persona(
        self, dialed_number: str, *, caller_number: str, timeout: float, trace_id: str
    ) -> GetPersonaResponse:
        self.asked.append((dialed_number, timeout))
        if isinstance(self.answer, UpstreamError):
            raise self.answer
        return self.answer


@dataclass
class FakeDispatcher:
    failure: UpstreamError | None = None
    existing: AgentJobMetadata | None = None
    requests: list[DispatchAgentRequest] = field(default_factory=list)
    trunks: dict[str, list[str]] = field(default_factory=dict)
    trunks_asked: list[str] = field(default_factory=list)

    async def trunk_numbers(self, trunk_id: str, *, timeout: float, trace_id: str) -> list[str]:
        self.trunks_asked.append(trunk_id)
        if trunk_id not in self.trunks:
            raise UpstreamError("DispatcherService", "NOT_FOUND", "no trunk", retryable=False, invalid_request=False)
        return self.trunks[trunk_id]

    async def dispatch(self, request: DispatchAgentRequest, *, timeout: float, trace_id: str) -> DispatchAgentResponse:
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure
        dispatch = Dispatch(dispatch_id="AD_1", agent_name=request.agent_name, room=request.room)
        if self.existing is not None:
            dispatch.job_metadata.CopyFrom(self.existing)
            return DispatchAgentResponse(dispatch=dispatch, already_existed=True)
        dispatch.job_metadata.CopyFrom(request.metadata)
        return DispatchAgentResponse(dispatch=dispatch)


def _flow(personas: FakePersonas, dispatcher: FakeDispatcher, budget: float = 3.0) -> CallFlow:
    ledger = InProcessEventLedger(ttl_seconds=600, max_entries=100)
    return CallFlow(personas, dispatcher, ledger, agent_name=AGENT, budget_seconds=budget, persona_timeout_seconds=1.0)


def _unavailable(service: str) -> UpstreamError:
    return UpstreamError(service, "UNAVAILABLE", "down", retryable=True, invalid_request=False)


async def test_dispatches_the_persona_with_the_call_facts_once_per_event() -> None:
    personas, dispatcher = FakePersonas(), FakeDispatcher()
    flow = _flow(personas, dispatcher)

    outcome = await flow.handle(_call())
    again = await flow.handle(_call())

    assert isinstance(outcome, Dispatched)
    assert (outcome.persona_id, outcome.persona_source, outcome.default_reason) == ("xeny", "PERSONA_SOURCE_CRM", "")
    assert isinstance(again, Duplicate)
    (request,) = dispatcher.requests
    assert request.agent_name == AGENT and request.room == "call-1"
    sent = request.metadata
    assert sent.persona == ASHA and sent.trace_id == "EV_1"
    assert sent.schema_version == job_metadata.CURRENT_SCHEMA_VERSION
    # PersonaService's E.164 form, not the carrier's national digits.
    assert sent.call.dialed_number == "+918655701159"
    assert (sent.call.caller_number, sent.call.sip_call_id, sent.call.sip_trunk_id) == ("+14155550100", "SCL_1", "ST_1")
    assert sent.call.participant_identity == "sip_caller"


async def test_the_persona_lookup_leaves_the_dispatch_its_reserve() -> None:
    personas = FakePersonas()
    await _flow(personas, FakeDispatcher(), budget=1.2).handle(_call())
    ((_, timeout),) = personas.asked
    assert timeout <= 1.2 - 0.5


async def test_persona_service_down_dispatches_the_default_and_says_why() -> None:
    personas, dispatcher = FakePersonas(answer=_unavailable("PersonaService")), FakeDispatcher()

    outcome = await _flow(personas, dispatcher).handle(_call())

    assert isinstance(outcome, Dispatched)
    assert outcome.persona_source == "PERSONA_SOURCE_DEFAULT"
    assert outcome.default_reason.startswith("PersonaService: UNAVAILABLE")
    assert dispatcher.requests[0].metadata.persona == default_persona()
    assert dispatcher.requests[0].metadata.call.dialed_number == "08655701159"  # as LiveKit sent it


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (DefaultReason.DEFAULT_REASON_NOT_FOUND, "no persona for the number"),
        (DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE, "CRM unavailable"),
        (DefaultReason.DEFAULT_REASON_DEADLINE_EXCEEDED, "out of time"),
        (DefaultReason.DEFAULT_REASON_SOURCE_INVALID, "CRM answer refused"),
    ],
)
async def test_persona_service_default_reports_persona_service_reason(
    reason: DefaultReason.ValueType, words: str
) -> None:
    answer = GetPersonaResponse(
        persona=default_persona(), source=PersonaSource.PERSONA_SOURCE_DEFAULT, default_reason=reason
    )
    outcome = await _flow(FakePersonas(answer=answer), FakeDispatcher()).handle(_call())
    assert isinstance(outcome, Dispatched)
    assert "PersonaService answered with its default persona" in outcome.default_reason
    assert words in outcome.default_reason


async def test_hidden_dialed_number_is_the_trunks_one_number() -> None:
    personas, dispatcher = FakePersonas(), FakeDispatcher(trunks={"ST_1": ["+918655701159"]})
    outcome = await _flow(personas, dispatcher).handle(_call(dialed=""))
    assert isinstance(outcome, Dispatched)
    assert dispatcher.trunks_asked == ["ST_1"]
    assert [number for number, _ in personas.asked] == ["+918655701159"]
    assert (outcome.persona_id, outcome.default_reason) == ("xeny", "")


@pytest.mark.parametrize(
    ("trunks", "trunk", "words"),
    [
        ({"ST_1": ["+918655701159", "+14155550100"]}, "ST_1", "has 2 numbers, not one"),
        ({"ST_1": []}, "ST_1", "has 0 numbers"),
        ({}, "ST_1", "unreadable"),
        ({"ST_1": ["+918655701159"]}, "", "no sip.trunkID"),
    ],
)
async def test_hidden_dialed_number_without_one_trunk_number_gets_the_default(
    trunks: dict[str, list[str]], trunk: str, words: str
) -> None:
    personas = FakePersonas()
    outcome = await _flow(personas, FakeDispatcher(trunks=trunks)).handle(_call(dialed="", trunk=trunk))
    assert isinstance(outcome, Dispatched)
    assert personas.asked == []
    assert outcome.persona_source == "PERSONA_SOURCE_DEFAULT"
    assert "hidden" in outcome.default_reason and words in outcome.default_reason


async def test_a_room_that_is_gone_is_acknowledged_not_failed() -> None:
    gone = UpstreamError(
        "DispatcherService", "NOT_FOUND", "room gone", retryable=False, invalid_request=False, reason="ROOM_NOT_FOUND"
    )
    outcome = await _flow(FakePersonas(), FakeDispatcher(failure=gone)).handle(_call())
    assert isinstance(outcome, RoomGone)
    assert "call-1" in outcome.reason


@pytest.mark.parametrize(("reason", "after"), [("NO_AGENT_WORKER", 2), ("DISPATCH_IN_PROGRESS", 1), ("", None)])
async def test_a_retryable_failure_says_when_to_retry_where_it_knows(reason: str, after: int | None) -> None:
    failure = UpstreamError(
        "DispatcherService", "UNAVAILABLE", "x", retryable=True, invalid_request=False, reason=reason
    )
    outcome = await _flow(FakePersonas(), FakeDispatcher(failure=failure)).handle(_call())
    assert isinstance(outcome, DispatchFailed) and outcome.retryable
    assert outcome.retry_after_seconds == after


async def test_a_persona_over_livekits_limit_is_swapped_for_the_default() -> None:
    huge = Persona(persona_id="huge", display_name="Huge", personality="x" * job_metadata.MAX_METADATA_BYTES)
    answer = GetPersonaResponse(persona=huge, source=PersonaSource.PERSONA_SOURCE_CRM, normalized_number="+1")
    dispatcher = FakeDispatcher()

    outcome = await _flow(FakePersonas(answer=answer), dispatcher).handle(_call())

    assert isinstance(outcome, Dispatched)
    assert "persona refused" in outcome.default_reason
    assert dispatcher.requests[0].metadata.persona == default_persona()


async def test_a_failed_dispatch_is_not_remembered_so_the_redelivery_is_processed() -> None:
    dispatcher = FakeDispatcher(failure=_unavailable("DispatcherService"))
    flow = _flow(FakePersonas(), dispatcher)

    failed = await flow.handle(_call())
    dispatcher.failure = None
    redelivered = await flow.handle(_call())

    assert isinstance(failed, DispatchFailed) and failed.retryable and not failed.invalid_request
    assert failed.reason.startswith("DispatcherService: UNAVAILABLE")
    assert isinstance(redelivered, Dispatched)
    assert len(dispatcher.requests) == 2


async def test_an_invalid_request_is_reported_as_such() -> None:
    refused = UpstreamError("DispatcherService", "INVALID_ARGUMENT", "room: bad", retryable=False, invalid_request=True)
    outcome = await _flow(FakePersonas(), FakeDispatcher(failure=refused)).handle(_call())
    assert isinstance(outcome, DispatchFailed)
    assert outcome.invalid_request and not outcome.retryable


async def test_an_existing_dispatch_reports_the_persona_it_carries() -> None:
    existing = AgentJobMetadata(persona=default_persona(), persona_source=PersonaSource.PERSONA_SOURCE_DEFAULT)
    outcome = await _flow(FakePersonas(), FakeDispatcher(existing=existing)).handle(_call())
    assert isinstance(outcome, Dispatched)
    assert outcome.already_existed
    assert outcome.persona_source == "PERSONA_SOURCE_DEFAULT"
    assert "already dispatched with the default" in outcome.default_reason


async def test_no_budget_left_fails_retryably_without_dispatching() -> None:
    dispatcher = FakeDispatcher()
    outcome = await _flow(FakePersonas(), dispatcher, budget=0.0).handle(_call())
    assert isinstance(outcome, DispatchFailed) and outcome.retryable
    assert dispatcher.requests == []
