"""How the chaos mesh is built; kept apart from mesh.py so fault definitions (and
`friday --help`) load without the test stand-ins."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MeshOptions:
    with_redis: bool = False
    # Short, so that a number warmed before the run is *stale* during it: every lookup
    # then reaches the CRM (and its fault), and a CRM failure must serve the stale copy.
    persona_cache_ttl_seconds: float = 0.5
    # Delay on every LiveKit Twirp call, so restarts and timeouts hit requests in flight.
    livekit_latency_seconds: float = 0.02
    seed: int = 0
