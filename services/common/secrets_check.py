"""Short HMAC secrets: quiet for LiveKit's own `--dev` default, said once in our
words for anything else.

PyJWT warns (InsecureKeyLengthWarning) on every token signed or verified with a key
under 32 bytes, which includes livekit-server --dev's `secret`: the local default on
every run, noise in every command's output. A short secret that is *not* the dev
default is worth one clear line instead.
"""

from __future__ import annotations

import logging
import warnings

logger = logging.getLogger(__name__)

# livekit-server --dev's API secret (the mesh's local default).
DEV_SECRET = "secret"
# RFC 7518 §3.2: an HS256 key at least as long as the hash.
MIN_SECRET_BYTES = 32

_said: set[str] = set()


def quiet_pyjwt_key_length_warnings() -> None:
    """PyJWT's per-token warning, off for this process; `check_secret` speaks instead."""
    from jwt.warnings import InsecureKeyLengthWarning

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def check_secret(setting: str, secret: str) -> None:
    """Log once per setting when a secret other than the dev default is short."""
    if secret == DEV_SECRET or len(secret.encode()) >= MIN_SECRET_BYTES or setting in _said:
        return
    _said.add(setting)
    logger.warning(
        "%s is %d bytes; HS256 wants at least %d (anyone who guesses it can sign LiveKit tokens or webhooks)",
        setting,
        len(secret.encode()),
        MIN_SECRET_BYTES,
    )
