"""What a fault run takes from a call's deliveries: the personas the gateway answered
`dispatched` with (the dispatch result it reported to the call history), and whether an
agent LiveKit holds was ever confirmed that way."""

from __future__ import annotations

from typing import Any

from services.chaos.calls import NumberKind, PhoneNumber, PlannedCall
from services.chaos.redelivery import Delivery
from services.chaos.runner import CallOutcome

CALL = PlannedCall(0, "chaos-test-0000", PhoneNumber("9800000000", NumberKind.WARM), "+919800000000")


def _delivery(*answers: tuple[int | None, dict[str, Any]]) -> Delivery:
    delivery = Delivery("EV_test", queued=0.0)
    for status, answer in answers:
        delivery.statuses.append(status)
        delivery.answers.append(answer)
    return delivery


FAILED = (503, {"status": "dispatch_failed", "detail": "budget exhausted before dispatch"})
DISPATCHED = (200, {"status": "dispatched", "persona_id": "crm-9800000000"})


def test_a_redelivery_answered_dispatched_confirms_the_agent() -> None:
    outcome = CallOutcome(CALL, [_delivery(FAILED, (None, {"transport_error": "ReadError"}), DISPATCHED)])
    outcome.dispatches = 1
    assert outcome.reported_personas == {"crm-9800000000"}
    assert not outcome.unconfirmed_agent
    assert outcome.simulated().reported_personas == {"crm-9800000000"}


def test_an_agent_after_five_failed_deliveries_was_never_confirmed() -> None:
    outcome = CallOutcome(CALL, [_delivery(*[FAILED] * 5)])
    outcome.dispatches = 1  # the last attempt's create landed after LiveKit gave up
    assert outcome.reported_personas == frozenset()
    assert outcome.unconfirmed_agent


def test_only_dispatched_answers_confirm() -> None:
    ignored = (200, {"status": "ignored", "detail": "event already dispatched"})
    outcome = CallOutcome(CALL, [_delivery(ignored), _delivery(DISPATCHED)])
    assert outcome.reported_personas == {"crm-9800000000"}
    outcome = CallOutcome(CALL, [_delivery(ignored)])
    outcome.dispatches = 1
    assert outcome.unconfirmed_agent
