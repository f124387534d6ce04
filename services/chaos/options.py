"""How the fault matrix sets up the in-process mesh (services.testing.mesh)."""

from __future__ import annotations

from dataclasses import replace

from services.testing.mesh_options import MeshOptions

CHAOS_MESH = MeshOptions(
    # Short, so that a number warmed before the run is *stale* during it: every lookup
    # then reaches the CRM (and its fault), and a CRM failure must serve the stale copy.
    persona_cache_ttl_seconds=0.5,
    # Every LiveKit Twirp call takes this long, so restarts and timeouts hit requests in flight.
    livekit_latency_seconds=0.02,
    # Every simulated call must leave exactly one record, with the right outcome and persona,
    # in a CallHistoryService of its own process, as `friday up` runs it: recording a hundred
    # calls in the mesh's event loop would slow the call path the matrix measures.
    call_history=True,
    calls_process=True,
)

# For the faults that take the shared Redis away (claims, persona cache, dedupe): the
# same mesh with one.
CHAOS_MESH_WITH_REDIS = replace(CHAOS_MESH, with_redis=True)
