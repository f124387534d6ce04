"""The one way a Friday service opens Redis.

Every use of Redis here sits on a call's path while the caller hears ringing, so a
Redis that does not answer must cost a fraction of the call's budget, not all of it:
short connect and read timeouts, and no retry on timeout (the caller's own fallback
— in-process cache, in-process ledger, a refused claim — is faster than a retry).
"""

from __future__ import annotations

from redis import asyncio as aioredis

# One round trip on a LAN is well under a millisecond; this only bounds a Redis that is gone.
DEFAULT_TIMEOUT_SECONDS = 0.25


def redis_client(url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> aioredis.Redis:
    """A pooled client for `url`; one per service process and Redis, shared by its users."""
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, retry_on_timeout=False
    )
