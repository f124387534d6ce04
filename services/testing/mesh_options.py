"""The knobs of the in-process mesh (`mesh.py`) that tests and faults turn.

Everything left at None runs with the service's own production default. Kept apart
from mesh.py, which imports all three services, so that what only names options
(fault definitions, `friday --help`) loads fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.dispatcher.config import RetryConfig

from .agent_workers import JobOutcome


@dataclass(frozen=True)
class MeshOptions:
    # A redis-server of the mesh's own, shared by all three services (claims, persona
    # cache, dedupe); without it each service keeps its state in process.
    with_redis: bool = False
    # Seed of the CRM stand-in's random failures (`CrmStandIn.fail_share`).
    seed: int = 0
    # Delay on every LiveKit Twirp call, so restarts and timeouts hit requests in flight.
    livekit_latency_seconds: float = 0.0
    # The agent worker LiveKit has for the agent name the gateway dispatches: how it answers
    # each job, after how long; None: no worker at all, so every dispatch stays without a job.
    livekit_worker: JobOutcome | None = JobOutcome.RUNS
    livekit_worker_accept_delay_seconds: float = 0.0
    # How long LiveKit takes to give up on a room it does not have (ListDispatch/DeleteDispatch);
    # None: the real ~15 s.
    livekit_missing_room_delay_seconds: float | None = None
    # PersonaService
    persona_cache_ttl_seconds: float | None = None
    crm_max_attempts: int | None = None
    crm_backoff_initial_seconds: float | None = None
    # DispatcherService: its retries of LiveKit requests.
    livekit_retry: RetryConfig | None = None
    # DispatcherService as a process of its own (`friday dispatcher serve`), which
    # `Mesh.kill_dispatcher` can SIGKILL mid-request; in this process otherwise.
    dispatcher_process: bool = False
    # CallHistoryService on a socket of its own, over an SQLite file of the mesh's, with the
    # gateway reporting every call to it as `friday up` wires them (CALLS_TARGET).
    call_history: bool = False
    # How long after the caller's join an agent must have joined (CALLS_NO_AGENT_SECONDS).
    calls_no_agent_seconds: float | None = None
    # CallHistoryService as a process of its own (`friday calls serve`), as `friday up` runs it:
    # recording then takes no time from the call path's event loop. In this process otherwise.
    calls_process: bool = False
    # Gateway
    gateway_budget_seconds: float | None = None
    gateway_persona_timeout_seconds: float | None = None
    gateway_max_body_bytes: int | None = None
