"""SIP inbound trunks as livekit-server lists them (`SIP.ListSIPInboundTrunk`, livekit-server
`pkg/service/sip.go` and its Redis store, livekit/protocol `livekit/sip.go`), without HTTP.

What is modelled: trunks kept by id; the request's `trunk_ids` keep only those trunks; its
`numbers` keep trunks holding one of them, compared as written or after livekit's
`NormalizeNumber` (spaces, dashes and parentheses dropped, a '+' added) — so `14155550100`
finds `+14155550100` but `4155550100` does not — and trunks without numbers (wildcard trunks)
always match; the answer is sorted by trunk id; `page.after_id` and `page.limit` apply.

Not modelled: creating, updating or deleting trunks over the API (the stand-in is set up with
`LiveKitStandIn.add_inbound_trunk`), legacy `SIPTrunkInfo` trunks, outbound trunks, dispatch
rules, and a server without SIP (no Redis), which answers every SIP call with `internal`.
"""

from __future__ import annotations

import re

from livekit.protocol.sip import ListSIPInboundTrunkRequest, SIPInboundTrunkInfo

_NUMBER = re.compile(r"^\+?[\d\- ()]+$")


def normalize_number(number: str) -> str:
    """livekit/protocol NormalizeNumber."""
    if not number or not _NUMBER.match(number):
        return number
    digits = re.sub(r"[ \-()]", "", number)
    return digits if digits.startswith("+") else "+" + digits


class InboundTrunks:
    def __init__(self) -> None:
        self._trunks: dict[str, SIPInboundTrunkInfo] = {}

    def add(self, trunk: SIPInboundTrunkInfo) -> SIPInboundTrunkInfo:
        self._trunks[trunk.sip_trunk_id] = trunk
        return _copy(trunk)

    def clear(self) -> None:
        self._trunks.clear()

    def all(self) -> list[SIPInboundTrunkInfo]:
        return [_copy(t) for t in self._trunks.values()]

    def list(self, req: ListSIPInboundTrunkRequest) -> list[SIPInboundTrunkInfo]:
        found = [_copy(t) for t in self._trunks.values() if _matches(req, t)]
        if req.HasField("page") and req.page.after_id:
            found = [t for t in found if t.sip_trunk_id > req.page.after_id]
        found.sort(key=lambda t: t.sip_trunk_id)
        if req.HasField("page") and req.page.limit > 0:
            found = found[: req.page.limit]
        return found


def _matches(req: ListSIPInboundTrunkRequest, trunk: SIPInboundTrunkInfo) -> bool:
    if req.trunk_ids and trunk.sip_trunk_id not in req.trunk_ids:
        return False
    if req.numbers and trunk.numbers:
        normalized = {normalize_number(n) for n in req.numbers}
        return any(n in req.numbers or normalize_number(n) in normalized for n in trunk.numbers)
    return True


def _copy(trunk: SIPInboundTrunkInfo) -> SIPInboundTrunkInfo:
    out = SIPInboundTrunkInfo()
    out.CopyFrom(trunk)
    return out
