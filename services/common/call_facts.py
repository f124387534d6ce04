"""The shapes a call fact may have, checked where facts enter the mesh and again in
the agent.

Call facts come from the caller's side: livekit/sip copies the INVITE's From and To
user parts into `sip.phoneNumber` and `sip.trunkPhoneNumber` as the carrier sent
them, and the agent reads them back from job metadata that any internal caller of
DispatcherService may have written. They end up in logs and in the LLM's
instructions, so a value is kept only in the shape the fact really has; anything
else is dropped (the call goes on without that fact) and reported:

- `caller_number`, `dialed_number`: 2-20 digits with an optional leading `+`, and
  between them only the visual separators of RFC 3966 (`-`, `.`, `(`, `)`) and
  spaces, at most 32 characters: E.164 (`+14155550100`) and the carrier forms
  (`14155550100`, `4155550100`, `0044…`, `011…`, `+91 98000 00000`, short codes).
  No letter can get through, so no word can. A caller's SIP user that says the number is
  withheld (`anonymous`, `restricted`, …) is an absent number, not a malformed one;
  any other SIP user (letters, `alice`) is dropped;
- `sip_call_id`: `SCL_` + 1-64 letters, digits, `-` or `_` (LiveKit's own are 12
  base57 characters; test tools and other SIP bridges add separators);
- `sip_trunk_id`: `ST_`, `sip_rule_id`: `SDR_`, + the same;
- `room`, `participant_identity`: 1-256 printable characters (LiveKit names,
  which dispatch rules build from a prefix, the caller's number and random text).

Normalising a number (which country, E.164) is PersonaService's job; this only
decides whether a value can be a number at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from friday.agent.v1.agent_job_metadata_pb2 import CallFacts
from services.common.log_safety import loggable

logger = logging.getLogger(__name__)

CALLER_NUMBER: Final = "caller_number"
DIALED_NUMBER: Final = "dialed_number"
SIP_CALL_ID: Final = "sip_call_id"
SIP_TRUNK_ID: Final = "sip_trunk_id"
SIP_RULE_ID: Final = "sip_rule_id"
ROOM: Final = "room"
PARTICIPANT_IDENTITY: Final = "participant_identity"

_PHONE_NUMBER = re.compile(r"\+?[0-9](?:[0-9 ().-]*[0-9])?")
_PHONE_NUMBER_MAX_CHARS = 32
_PHONE_NUMBER_DIGITS = range(2, 21)
_ID_TAIL = r"[0-9A-Za-z_-]{1,64}"
_LIVEKIT_NAME_MAX_CHARS = 256


def _is_phone_number(value: str) -> bool:
    return (
        len(value) <= _PHONE_NUMBER_MAX_CHARS
        and _PHONE_NUMBER.fullmatch(value) is not None
        and sum(ch.isdigit() for ch in value) in _PHONE_NUMBER_DIGITS
    )


_SHAPES: Final[dict[str, Callable[[str], bool]]] = {
    CALLER_NUMBER: _is_phone_number,
    DIALED_NUMBER: _is_phone_number,
    SIP_CALL_ID: lambda v: re.fullmatch(rf"SCL_{_ID_TAIL}", v) is not None,
    SIP_TRUNK_ID: lambda v: re.fullmatch(rf"ST_{_ID_TAIL}", v) is not None,
    SIP_RULE_ID: lambda v: re.fullmatch(rf"SDR_{_ID_TAIL}", v) is not None,
    ROOM: lambda v: len(v) <= _LIVEKIT_NAME_MAX_CHARS and v.isprintable(),
    PARTICIPANT_IDENTITY: lambda v: len(v) <= _LIVEKIT_NAME_MAX_CHARS and v.isprintable(),
}


# Every fact name there is: the bounded label set of the "dropped" metrics.
FACT_NAMES: Final = frozenset(_SHAPES)

# What SIP users put in From when the caller withholds their number (RFC 3323's
# "anonymous", and carriers' own words for it).
_WITHHELD_CALLERS = frozenset({"anonymous", "restricted", "private", "unknown", "unavailable", "withheld"})

# How much of a refused value a log line quotes: enough to recognise it.
_QUOTED_CHARS = 64

# CallFacts fields this module checks; the others (none today) pass through.
_CALL_FACT_FIELDS = (CALLER_NUMBER, DIALED_NUMBER, SIP_CALL_ID, SIP_TRUNK_ID, ROOM, PARTICIPANT_IDENTITY)


def accepted(fact: str, value: str) -> bool:
    """Whether `value` has the shape of `fact` (one of FACT_NAMES). Empty is not accepted."""
    return bool(value) and _SHAPES[fact](value)


def is_withheld_caller(value: str) -> bool:
    return value.strip().lower() in _WITHHELD_CALLERS


@dataclass(frozen=True)
class Refused:
    """A fact dropped for its shape, and its value escaped for a log line."""

    fact: str
    quoted: str


def check(fact: str, value: str) -> tuple[str, Refused | None]:
    """(`value`, None) when it has the fact's shape or is empty; ("", why) when not.
    A withheld caller is simply absent: ("", None)."""
    if not value or accepted(fact, value):
        return value, None
    if fact == CALLER_NUMBER and is_withheld_caller(value):
        return "", None
    return "", Refused(fact, loggable(value, _QUOTED_CHARS))


def checked(call: CallFacts) -> tuple[CallFacts, list[Refused]]:
    """A copy of `call` with every fact of the wrong shape emptied, and what was dropped."""
    clean = CallFacts()
    clean.CopyFrom(call)
    refused: list[Refused] = []
    for field in _CALL_FACT_FIELDS:
        value, why = check(field, getattr(call, field))
        setattr(clean, field, value)
        if why is not None:
            refused.append(why)
    return clean, refused


def report(refused: list[Refused], *, where: str, count: Callable[[str], None]) -> None:
    """Log each dropped fact at WARNING (its value escaped and cut short) and count it
    by fact name: the call goes on without it."""
    for item in refused:
        logger.warning("%s: dropped call fact %s of the wrong shape: %s", where, item.fact, item.quoted)
        count(item.fact)
