"""Domain errors of a persona lookup, each with the stable `reason` that the gRPC
layer puts into google.rpc.ErrorInfo (see persona_service.proto)."""

from __future__ import annotations

from services.common.errors import DomainError

ERROR_DOMAIN = "persona.friday"


class PersonaLookupError(DomainError):
    """`number` is the number as normalised, when it got that far (the servicer puts it in
    the ErrorInfo metadata as `normalized_number`)."""

    reason = "INTERNAL"

    def __init__(self, message: str, number: str = "") -> None:
        super().__init__(message)
        self.number = number


class InvalidNumberError(PersonaLookupError):
    reason = "INVALID_PHONE_NUMBER"


class PersonaNotFoundError(PersonaLookupError):
    reason = "PERSONA_NOT_FOUND"


class CrmUnavailableError(PersonaLookupError):
    reason = "CRM_UNAVAILABLE"


class LookupDeadlineError(PersonaLookupError):
    reason = "DEADLINE_EXCEEDED"


class NewNumberRateLimitedError(PersonaLookupError):
    """A CRM fetch for a number never seen before was over the new-number limit
    (`limit`: "peer" or "overall")."""

    reason = "NEW_NUMBER_RATE_LIMITED"

    def __init__(self, message: str, number: str = "", *, limit: str) -> None:
        super().__init__(message, number)
        self.limit = limit


class WatchTooSlowError(PersonaLookupError):
    """A WatchPersonas subscriber fell behind its buffer and was cut off."""

    reason = "WATCH_TOO_SLOW"


class TooManyNumbersError(PersonaLookupError):
    """A request named more numbers than one call may."""

    reason = "TOO_MANY_NUMBERS"


class WatchUnavailableError(PersonaLookupError):
    """This service publishes no changes (its source is a file that never changes)."""

    reason = "WATCH_UNAVAILABLE"
