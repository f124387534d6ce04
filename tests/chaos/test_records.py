"""What a simulated call's record must say, and how the records a service holds are
matched to the calls: by room, a second record of a call by its SIP call id."""

from __future__ import annotations

import pytest

from friday.calls.v1.call_pb2 import Call, CallOutcome
from services.calls.records import timestamp_of
from services.chaos.records import ABANDONED, ANSWERED, NO_AGENT, SimulatedCall, judge

T0 = 1_760_000_000_000


def _call(
    room: str,
    *,
    agent: int | None = 1500,
    end: int | None = 5000,
    persona: str | None = "crm-1",
    reported: frozenset[str] | None = None,
) -> SimulatedCall:
    """`reported`: the personas the gateway answered `dispatched` with; by default the agent's."""
    return SimulatedCall(
        room=room,
        sip_call_id=f"SCL_{room}",
        sip_joined_ms=T0,
        agent_joined_ms=None if agent is None else T0 + agent,
        ended_ms=None if end is None else T0 + end,
        persona_id=persona,
        reported_personas=(frozenset() if persona is None else frozenset({persona})) if reported is None else reported,
    )


def _record(room: str, outcome: int = CallOutcome.CALL_OUTCOME_ANSWERED, *, persona: str = "crm-1") -> Call:
    record = Call(room=room, sip_call_id=f"SCL_{room}", outcome=outcome)  # type: ignore[arg-type]
    record.started_at.CopyFrom(timestamp_of(T0))
    record.ended_at.CopyFrom(timestamp_of(T0 + 5000))
    record.dispatch.persona_id = persona
    return record


@pytest.mark.parametrize(
    ("agent", "end", "expected"),
    [
        (1500, 5000, ANSWERED),
        (20_000, 30_000, ANSWERED),  # at the limit still answered
        (20_001, 30_000, NO_AGENT),  # the caller rang too long
        (None, 5000, ABANDONED),
        (None, 20_000, NO_AGENT),
        (None, None, NO_AGENT),
    ],
)
def test_the_expected_outcome_follows_the_lifecycle_sent(agent: int | None, end: int | None, expected: str) -> None:
    assert _call("r", agent=agent, end=end).expected_outcome(20.0) == expected


def test_one_right_record_per_call_is_complete_and_right() -> None:
    check = judge([_call("a"), _call("b")], [_record("a"), _record("b")], 20.0)
    assert check.extra == [] and check.complete
    assert all(v.found == 1 and not v.wrong for v in check.verdicts.values())


def test_missing_extra_second_and_wrong_records_are_each_told_apart() -> None:
    second = _record("elsewhere")
    second.sip_call_id = "SCL_b"
    unended = _record("d")
    unended.ClearField("ended_at")
    records = [
        _record("b"),
        second,
        _record("stranger"),
        _record("c", CallOutcome.CALL_OUTCOME_NO_AGENT),
        unended,
        _record("e", persona="default"),
    ]
    calls = [_call(room) for room in "abcde"]
    check = judge(calls, records, 20.0)
    v = check.verdicts
    assert (v["a"].found, v["a"].wrong) == (0, False)
    assert (v["b"].found, v["b"].wrong) == (1, False)
    assert v["c"].wrong_outcome and v["c"].wrong and v["c"].why.startswith("outcome no_agent, expected answered")
    assert v["d"].wrong and not v["d"].complete and v["d"].why == "not ended"
    assert v["e"].wrong_persona and not v["e"].wrong_outcome
    assert check.extra == [
        "elsewhere: a second record of b (SIP call id SCL_b)",
        "stranger: a record of no simulated call",
    ]
    assert not check.complete


def test_a_call_without_an_agent_has_no_persona_to_match() -> None:
    check = judge(
        [_call("a", agent=None, persona=None)], [_record("a", CallOutcome.CALL_OUTCOME_ABANDONED, persona="")], 20.0
    )
    assert not check.verdicts["a"].wrong


def test_an_agent_whose_dispatch_the_gateway_never_confirmed_shows_the_persona_the_dispatcher_reported() -> None:
    # Every delivery was answered 503 and the last one's create landed after LiveKit gave up:
    # the gateway never had a dispatch result, but DispatcherService reports the landing itself.
    late = _call("a", agent=None, end=30_000, persona="crm-1", reported=frozenset())
    check = judge([late], [_record("a", CallOutcome.CALL_OUTCOME_NO_AGENT, persona="crm-1")], 20.0)
    assert not check.verdicts["a"].wrong
    unreported = judge([late], [_record("a", CallOutcome.CALL_OUTCOME_NO_AGENT, persona="")], 20.0).verdicts["a"]
    assert unreported.wrong_persona and unreported.wrong
    assert unreported.why == "persona '-', the agent of a late create has 'crm-1'"
    assert unreported.shows.startswith("record: no_agent, no dispatch facts")


def test_dispatch_facts_nobody_could_have_reported_are_wrong() -> None:
    # No delivery answered `dispatched` and LiveKit holds no single agent: no dispatch to show.
    none = _call("a", persona=None, reported=frozenset())
    verdict = judge([none], [_record("a")], 20.0).verdicts["a"]
    assert verdict.wrong_persona and verdict.wrong
    assert verdict.why == "persona 'crm-1', but the gateway answered no delivery `dispatched`"


def test_a_confirmed_dispatch_missing_from_the_record_is_wrong() -> None:
    verdict = judge([_call("a")], [_record("a", persona="")], 20.0).verdicts["a"]
    assert verdict.wrong_persona and verdict.why == "persona '-', the agent has 'crm-1'"


def test_without_a_single_agent_the_record_shows_a_persona_the_gateway_answered() -> None:
    doubled = _call("a", persona=None, reported=frozenset({"crm-1"}))
    assert not judge([doubled], [_record("a")], 20.0).verdicts["a"].wrong
    verdict = judge([doubled], [_record("a", persona="crm-2")], 20.0).verdicts["a"]
    assert verdict.wrong_persona and verdict.why == "persona 'crm-2', the gateway answered ['crm-1']"
