"""The simulated calls of one fault run and what counts as the right persona.

Numbers come in three kinds:
- WARM: the CRM has a persona, and PersonaService fetched it before the run (its
  copy is stale by the time calls arrive, so a CRM failure must serve it);
- COLD: the CRM has a persona nobody asked for yet;
- UNKNOWN: the CRM has no persona (404): the default is the only right answer.
Each CRM persona's id names its number, so a call that got another number's
persona is caught too.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
from services.common import job_metadata
from services.common.default_persona import DEFAULT_PERSONA_ID

NUMBERS_PER_KIND = 10


class NumberKind(enum.Enum):
    WARM = "warm"
    COLD = "cold"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PhoneNumber:
    national: str  # the CRM path segment (PersonaService's default number format)
    kind: NumberKind

    @property
    def e164(self) -> str:
        return "+91" + self.national

    def as_dialed(self, variant: int) -> str:
        """The same number written the ways SIP trunks write it; PersonaService normalises."""
        n = self.national
        return (self.e164, f"+91 {n[:5]} {n[5:]}", "0" + n)[variant % 3]

    @property
    def persona_id(self) -> str:
        return DEFAULT_PERSONA_ID if self.kind is NumberKind.UNKNOWN else f"crm-{self.national}"

    def crm_body(self) -> dict[str, str]:
        return {
            "persona_id": self.persona_id,
            "persona_name": f"Agent for {self.national}",
            "personality": f"You answer calls to {self.e164}.",
            "conversationStructure": "Greet, help, close.",
            "welcome_message": f"Hello from {self.national}",
            "closing_message": "Goodbye",
        }


def numbers(per_kind: int = NUMBERS_PER_KIND) -> list[PhoneNumber]:
    """The pool, kinds interleaved (warm, cold, unknown, warm, ...): calls take numbers in
    pool order, so any run of three or more calls exercises every kind."""
    return [PhoneNumber(f"98{k}{i:07d}", kind) for i in range(per_kind) for k, kind in enumerate(NumberKind)]


@dataclass(frozen=True)
class PlannedCall:
    index: int
    room: str
    number: PhoneNumber
    dialed: str  # as written in sip.trunkPhoneNumber


def plan_calls(fault: str, count: int, pool: list[PhoneNumber]) -> list[PlannedCall]:
    calls = []
    for i in range(count):
        number = pool[i % len(pool)]
        calls.append(PlannedCall(i, f"chaos-{fault}-{i:04d}", number, number.as_dialed(i // len(pool))))
    return calls


@dataclass(frozen=True)
class PersonaVerdict:
    persona_id: str | None  # None when there is no (single) dispatch to judge
    used_default: bool
    wrong: bool
    why: str = ""


def judge_persona(call: PlannedCall, metadata_json: str, default_allowed_for: Iterable[NumberKind]) -> PersonaVerdict:
    """Right = the number's own CRM persona, or the default where the fault left no
    fresh or stale copy reachable (`default_allowed_for`) or the CRM has none."""
    try:
        metadata: AgentJobMetadata = job_metadata.decode(metadata_json)
    except job_metadata.JobMetadataError as exc:
        return PersonaVerdict(None, False, True, f"metadata does not decode: {exc}")
    got = metadata.persona.persona_id
    used_default = got == DEFAULT_PERSONA_ID
    if metadata.call.room != call.room:
        return PersonaVerdict(got, used_default, True, f"metadata names room {metadata.call.room!r}")
    if got == call.number.persona_id:
        return PersonaVerdict(got, used_default, False)
    if used_default and call.number.kind in set(default_allowed_for):
        return PersonaVerdict(got, used_default, False)
    if used_default:
        return PersonaVerdict(got, used_default, True, f"default although a persona was available ({call.number.kind})")
    return PersonaVerdict(got, used_default, True, f"got {got!r}, another number's persona")
