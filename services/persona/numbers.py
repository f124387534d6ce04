"""Dialed-number parsing. E.164 is the canonical form (the cache key); the form
sent to the CRM is configurable because the original Friday handler sent national
digits (`8655701159` for +91 86557 01159)."""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from urllib.parse import quote

import phonenumbers

# Digits, an optional leading +, and the separators people and SIP trunks use.
# Rejecting letters up front matters: phonenumbers would read "1-800-FLOWERS" as digits.
_PHONE_CHARS = re.compile(r"^\+?[0-9\s().\-]+$")
_MAX_INPUT_LENGTH = 32
# Ends every refusal, so the caller sees what a number should look like.
VALID_FORM = "write it as '+', the country code and the number, e.g. +918655701159"


class InvalidPhoneNumber(ValueError):
    """The input is not a phone number; nothing is sent to the CRM."""


class CrmNumberFormat(enum.StrEnum):
    """How the number appears in the CRM URL path segment."""

    E164 = "e164"  # +918655701159 (sent percent-encoded: %2B918655701159)
    NATIONAL = "national"  # 8655701159: national significant number, as the original handler
    AS_RECEIVED = "as_received"  # the caller's text, trimmed (validated first, then percent-encoded)


@dataclass(frozen=True)
class DialedNumber:
    e164: str
    national: str
    received: str

    def crm_segment(self, number_format: CrmNumberFormat) -> str:
        """The CRM path segment, percent-encoded so it can never add a path level."""
        raw = {
            CrmNumberFormat.E164: self.e164,
            CrmNumberFormat.NATIONAL: self.national,
            CrmNumberFormat.AS_RECEIVED: self.received,
        }[number_format]
        return quote(raw, safe="")


# International call prefixes a carrier may leave in front of a country code
# (`00` in most of the world, `011` in the NANP), whatever the default region is.
_IDD_PREFIXES = ("00", "011")


# Phone traffic repeats the same few dialed numbers, and a phonenumbers parse is not cheap
# (measured in the bench; see README Performance).
# Only successes are cached (lru_cache does not keep exceptions), and the size is bounded.
@functools.lru_cache(maxsize=4096)
def parse_dialed_number(text: str, default_region: str) -> DialedNumber:
    """Parse `text` as a carrier sends it in `sip.trunkPhoneNumber`.

    `+` and a country code: read as written. Otherwise the readings are tried in
    order and the first that phonenumbers holds *valid* wins: the default region's
    (`8655701159`, `08655701159` in IN), an international prefix (`0044…`, `011 44…`),
    then the digits as an international number whose `+` the carrier dropped
    (`14155550100`, `442079460958`). When no reading is valid, the first *possible*
    one (right length for its country) is kept in the same order: CRMs hold new
    ranges and test numbers that the bundled metadata may not know yet."""
    received = (text or "").strip()
    if not received:
        raise InvalidPhoneNumber(f"the dialed number is empty; {VALID_FORM}")
    if len(received) > _MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber(
            f"{received[:40]!r}... is not a phone number: over {_MAX_INPUT_LENGTH} characters; {VALID_FORM}"
        )
    if not any(ch.isdigit() for ch in received):
        raise InvalidPhoneNumber(f"{received!r} is not a phone number: it has no digits; {VALID_FORM}")
    if not _PHONE_CHARS.match(received):
        raise InvalidPhoneNumber(
            f"{received!r} is not a phone number: only digits, spaces, '.', '-', '(', ')' and a leading '+' "
            f"may appear; {VALID_FORM}"
        )
    readings, failures = _readings(received, default_region)
    if not readings:
        raise InvalidPhoneNumber(f"{received!r} {_why_unreadable(received, failures)}; {VALID_FORM}")
    chosen = next((n for n in readings if phonenumbers.is_valid_number(n)), None)
    if chosen is None:
        chosen = next((n for n in readings if phonenumbers.is_possible_number(n)), None)
    if chosen is None:
        first = phonenumbers.format_number(readings[0], phonenumbers.PhoneNumberFormat.E164)
        raise InvalidPhoneNumber(
            f"{received!r} has the wrong number of digits for a phone number (read as {first}); {VALID_FORM}"
        )
    return DialedNumber(
        e164=phonenumbers.format_number(chosen, phonenumbers.PhoneNumberFormat.E164),
        national=phonenumbers.national_significant_number(chosen),
        received=received,
    )


def _readings(
    received: str, default_region: str
) -> tuple[list[phonenumbers.PhoneNumber], list[phonenumbers.NumberParseException]]:
    """Every way to read `received`, most likely first (see parse_dialed_number), and why
    the other candidates could not be read at all."""
    candidates: list[tuple[str, str | None]]
    if received.startswith("+"):
        candidates = [(received, None)]
    else:
        digits = "".join(ch for ch in received if ch.isdigit())
        candidates = [(received, default_region)]
        candidates += [("+" + digits[len(p) :], None) for p in _IDD_PREFIXES if digits.startswith(p)]
        candidates.append(("+" + digits, None))
    readings = []
    failures = []
    for candidate, region in candidates:
        try:
            readings.append(phonenumbers.parse(candidate, region))
        except phonenumbers.NumberParseException as exc:
            failures.append(exc)
    return readings, failures


def _why_unreadable(received: str, failures: list[phonenumbers.NumberParseException]) -> str:
    """Our own words for why no reading parsed (phonenumbers' texts describe its parser)."""
    digits = sum(ch.isdigit() for ch in received)
    kinds = {f.error_type for f in failures}
    if phonenumbers.NumberParseException.TOO_LONG in kinds:
        return f"has {digits} digits, too many for a phone number"
    if received.startswith("+") and phonenumbers.NumberParseException.INVALID_COUNTRY_CODE in kinds:
        return "does not start with a country calling code after the '+'"
    return f"has {digits} digit{'' if digits == 1 else 's'}, too few for a phone number"
