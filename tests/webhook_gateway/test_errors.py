"""UpstreamError (services/webhook_gateway/errors.py) behaves as an exception does: its
message is what logs and DispatchFailed reasons show, and two failures are never equal."""

from __future__ import annotations

from services.webhook_gateway.errors import UpstreamError


def _failure() -> UpstreamError:
    return UpstreamError("DispatcherService", "UNAVAILABLE", "down", retryable=True, invalid_request=False)


def test_the_message_names_the_code_the_service_and_the_details() -> None:
    failure = _failure()
    assert str(failure) == "UNAVAILABLE: DispatcherService: down"
    assert failure.args == ("UNAVAILABLE: DispatcherService: down",)
    assert repr(failure) == "UpstreamError('UNAVAILABLE: DispatcherService: down')"


def test_the_facts_are_kept_apart_from_the_message() -> None:
    reason = "INVALID_PHONE_NUMBER"
    failure = UpstreamError(
        "PersonaService", "INVALID_ARGUMENT", "bad", retryable=False, invalid_request=True, reason=reason
    )
    assert (failure.service, failure.code, failure.message) == ("PersonaService", "INVALID_ARGUMENT", "bad")
    assert (failure.retryable, failure.invalid_request, failure.reason) == (False, True, reason)
    assert _failure().reason == ""


def test_two_failures_alike_are_still_two() -> None:
    first, second = _failure(), _failure()
    assert first != second
    assert len({first, second}) == 2
