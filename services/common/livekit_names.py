"""Names LiveKit and the mesh agree on, in one place: the agent name the worker
registers with and the gateway dispatches to, and the attribute keys livekit/sip
sets on a SIP participant (docs/architecture.md, "SIP participant attributes")."""

from __future__ import annotations

from typing import Final

# The worker registers under this name (explicit dispatch only); the gateway and the
# dispatcher CLI dispatch to it. Both read AGENT_TO_DISPATCH to change it.
DEFAULT_AGENT_NAME: Final = "friday-ai-agent"
AGENT_NAME_ENV: Final = "AGENT_TO_DISPATCH"


class SipAttribute:
    """Keys of `ParticipantInfo.attributes` for SIP participants."""

    CALL_ID: Final = "sip.callID"
    CALL_ID_FULL: Final = "sip.callIDFull"
    CALL_TAG: Final = "sip.callTag"
    CALL_STATUS: Final = "sip.callStatus"
    TRUNK_ID: Final = "sip.trunkID"
    RULE_ID: Final = "sip.ruleID"
    # The caller's number; absent when the dispatch rule hides numbers.
    PHONE_NUMBER: Final = "sip.phoneNumber"
    # The number that was dialed, as the carrier sent it (the persona key); absent when hidden.
    TRUNK_PHONE_NUMBER: Final = "sip.trunkPhoneNumber"
    HOSTNAME: Final = "sip.hostname"
    # Prefix of the SIP header attributes (`sip.h.x-custom`).
    HEADER_PREFIX: Final = "sip.h."
