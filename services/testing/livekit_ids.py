"""Resource ids as livekit-server makes them (livekit/protocol `utils/guid`): a type prefix
(`AD_` dispatch, `AJ_` job, `AW_` worker, `RM_` room, `SCL_` SIP call, ...) and 12
characters of shortuuid's base57 alphabet, which leaves out the look-alikes 0, 1, I, O and l.
"""

from __future__ import annotations

import secrets

ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ID_SIZE = 12

DISPATCH_PREFIX = "AD_"
JOB_PREFIX = "AJ_"
WORKER_PREFIX = "AW_"
ROOM_PREFIX = "RM_"
PARTICIPANT_PREFIX = "PA_"
SIP_CALL_PREFIX = "SCL_"


def guid(prefix: str) -> str:
    # One getrandom() for the 12 characters, not one per character (secrets.choice): the
    # benchmark makes several ids per call. The modulo's bias is irrelevant for test ids.
    return prefix + "".join(ID_ALPHABET[byte % len(ID_ALPHABET)] for byte in secrets.token_bytes(ID_SIZE))
