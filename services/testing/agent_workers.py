"""Agent workers as livekit-server sees them: who is registered under which agent name,
how a job request reaches one of them, and what each worker reports about its jobs
(livekit-server `pkg/agent/client.go`, `pkg/agent/worker.go`, `pkg/service/agentservice.go`).

What is modelled:

* Workers register under an agent name (`AW_…` ids) and take room jobs (`JT_ROOM`, the
  livekit-agents default). Several workers may share a name.
* Launching a dispatch's job: with no worker under the name the server logs "not
  dispatching agent job since no worker is available" and there is no job, ever: a worker
  that registers later does not pick up an earlier dispatch. The implicit dispatch
  (agent name "") goes only to workers registered without a name, and logs nothing.
* The job request goes to a random worker of the name not tried yet (livekit-server
  weighs by load; every load is 0 here), which answers after its accept delay:
  - accepted: the job is `JS_RUNNING` with `worker_id`, `started_at` = `updated_at` = the
    moment the server asked (not when the worker answered), and `participant_identity`
    "agent-<job id>" (livekit-agents' default identity);
  - rejected (livekit-agents' `JobRequest.reject()`, which asks to terminate): `JS_SUCCESS`
    with `ended_at`, no participant;
  - not available (a worker at capacity): the next worker is asked; none left → no job.
  A request unanswered within its timeout (psrpc's default 3 s, one attempt) gives no job.
* The worker's own record of a job, which its status updates change (`UpdateJobStatus`):
  a failing job becomes `JS_FAILED` right after it started (livekit-agents sends an empty
  error text) and its agent leaves the room. The room's copy of the job — what
  ListDispatch shows in `state.jobs` — is the state the job request returned and is not
  updated by these reports (livekit-server leaves a TODO there).
* Terminating a job (`TerminateJob`): asked for (DeleteDispatch) → `JS_SUCCESS`; because its
  agent left the room → `JS_FAILED` "agent worker left the room"; a job no longer running →
  nothing.
* A worker that goes away (its WebSocket closed): the server forgets its jobs without
  updating their state; their agents leave their rooms.

The agent protocol's WebSocket and messages are in `agent_protocol`: a connected worker is a
`WorkerBehaviour` like the scripted one here. Not modelled: load, `WS_FULL` status (the
protocol stand-in skips a full worker), namespaces, deployments, publisher and participant
jobs, job restarts (LiveKit Cloud only), and the server's one-minute cache of agent names.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from livekit.protocol.agent import Job, JobState, JobStatus

from .livekit_ids import WORKER_PREFIX, guid

M = TypeVar("M", Job, JobState)

logger = logging.getLogger("services.testing.livekit")

# livekit-server's agent client sends each job request with psrpc's default timeout, once.
JOB_REQUEST_TIMEOUT_SECONDS = 3.0
AGENT_LEFT_ROOM_ERROR = "agent worker left the room"
NO_WORKER_LOG = "not dispatching agent job since no worker is available"


class JobOutcome(enum.Enum):
    """How a scripted worker answers every job it is offered."""

    RUNS = "runs"  # accepts; the agent joins the room and stays until terminated
    FAILS = "fails"  # accepts; the job fails right after it started and the agent leaves
    REJECTS = "rejects"  # JobRequest.reject(): LiveKit records the job as ended (JS_SUCCESS)
    FULL = "full"  # answers not available: LiveKit asks another worker of the name, if any


class TerminateReason(enum.Enum):
    """livekit/protocol rpc.JobTerminateReason."""

    TERMINATION_REQUESTED = 0
    AGENT_LEFT_ROOM = 1


@dataclass(frozen=True)
class Availability:
    """A worker's AvailabilityResponse."""

    available: bool
    terminate: bool = False
    participant_identity: str = ""


class WorkerBehaviour(Protocol):
    """What a worker does with what the server sends it: scripted below, or a client of the
    agent protocol behind a WebSocket. `workers` is the registry, for status updates."""

    async def availability(self, job: Job) -> Availability: ...

    def assigned(self, job: Job, workers: AgentWorkers) -> None: ...

    def terminated(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class ScriptedBehaviour:
    accept_delay: float = 0.0
    outcome: JobOutcome = JobOutcome.RUNS

    async def availability(self, job: Job) -> Availability:
        if self.accept_delay > 0:
            await asyncio.sleep(self.accept_delay)
        if self.outcome is JobOutcome.FULL:
            return Availability(available=False)
        if self.outcome is JobOutcome.REJECTS:
            return Availability(available=False, terminate=True)
        return Availability(available=True, participant_identity="agent-" + job.id)

    def assigned(self, job: Job, workers: AgentWorkers) -> None:
        if self.outcome is JobOutcome.FAILS:
            # After the room has the job: livekit-server records the job, then the agent joins and fails.
            asyncio.get_running_loop().call_soon(workers.job_failed, job.id, "")

    def terminated(self, job_id: str) -> None:
        return None


@dataclass
class Worker:
    id: str
    agent_name: str
    behaviour: WorkerBehaviour
    registered_at: float
    running: dict[str, Job] = field(default_factory=dict)  # the worker's own copies


AgentLeft = Callable[[str, str], None]  # (room name, participant identity)


class AgentWorkers:
    """The registry: `lk.workers.register("friday-ai-agent")` and the server-side job calls."""

    def __init__(self, *, job_request_timeout: float = JOB_REQUEST_TIMEOUT_SECONDS) -> None:
        self.job_request_timeout = job_request_timeout
        self._workers: dict[str, Worker] = {}
        self._job_worker: dict[str, str] = {}  # running job id -> worker id
        self._jobs: dict[str, tuple[Job, str]] = {}  # every job a worker took, its own copy, and whose
        self.on_agent_left: AgentLeft = lambda room, identity: None

    # -- registration --------------------------------------------------------------------

    def register(self, agent_name: str, *, accept_delay: float = 0.0, outcome: JobOutcome = JobOutcome.RUNS) -> Worker:
        """A scripted worker: answers every job after `accept_delay` seconds, as `outcome` says."""
        return self.attach(agent_name, ScriptedBehaviour(max(0.0, accept_delay), outcome))

    def attach(self, agent_name: str, behaviour: WorkerBehaviour) -> Worker:
        worker = Worker(guid(WORKER_PREFIX), agent_name, behaviour, time.time())
        self._workers[worker.id] = worker
        _log("worker registered", agentName=agent_name, workerID=worker.id)
        return worker

    def remove(self, worker_id: str) -> Worker:
        """The worker disconnects. Raises KeyError for an unknown id."""
        worker = self._workers.pop(worker_id)
        for job_id, job in list(worker.running.items()):
            # livekit-server forgets the job (no state update); the agent's connection to the room goes too.
            self._job_worker.pop(job_id, None)
            if job.state.participant_identity:
                self.on_agent_left(job.room.name, job.state.participant_identity)
        worker.running.clear()
        return worker

    def set_absent(self, agent_name: str) -> list[Worker]:
        """Every worker registered under `agent_name` disconnects."""
        return [self.remove(w.id) for w in self.workers(agent_name)]

    # -- observation ---------------------------------------------------------------------

    def workers(self, agent_name: str | None = None) -> list[Worker]:
        return [w for w in self._workers.values() if agent_name is None or w.agent_name == agent_name]

    def jobs(self) -> list[Job]:
        """Every job a worker took, as the worker last reported it (status, error, ended_at)."""
        return [_copy(job) for job, _ in self._jobs.values()]

    def job(self, job_id: str) -> Job | None:
        held = self._jobs.get(job_id)
        return _copy(held[0]) if held else None

    def worker_of(self, job_id: str) -> str | None:
        held = self._jobs.get(job_id)
        return held[1] if held else None

    # -- what the server asks ------------------------------------------------------------

    async def request_job(self, job: Job) -> JobState | None:
        """LaunchJob + JobRequest for one room job: the state the room records, or None (no job)."""
        fields = {"agentName": job.agent_name, "jobType": "JT_ROOM", "room": job.room.name, "roomID": job.room.sid}
        if not self.workers(job.agent_name):
            if job.agent_name:
                _log(NO_WORKER_LOG, **fields)
            return None
        try:
            async with asyncio.timeout(self.job_request_timeout):
                return await self._assign(job, fields)
        except TimeoutError:
            _log("failed to send job request", error="request timed out", **fields)
            return None

    async def _assign(self, job: Job, fields: dict[str, str]) -> JobState | None:
        attempted: set[str] = set()
        while True:
            candidates = [w for w in self.workers(job.agent_name) if w.id not in attempted]
            if not candidates:
                _log("failed to send job request", error="no workers with sufficient capacity", **fields)
                return None
            worker = random.choice(candidates)
            attempted.add(worker.id)
            asked_at = time.time_ns()
            offered = _copy(job)
            offered.state.CopyFrom(JobState(worker_id=worker.id, updated_at=asked_at, started_at=asked_at))
            offered.state.status = JobStatus.JS_RUNNING
            answer = await worker.behaviour.availability(_copy(offered))
            if worker.id not in self._workers:
                continue  # closed while asked: ErrWorkerClosed, the next worker is tried
            if answer.terminate:
                offered.state.ended_at = asked_at
                offered.state.status = JobStatus.JS_SUCCESS
                self._jobs[offered.id] = (offered, worker.id)
                return _copy(offered.state)
            if not answer.available:
                continue  # ErrWorkerNotAvailable: the next worker is tried
            offered.state.participant_identity = answer.participant_identity
            worker.running[offered.id] = offered
            self._job_worker[offered.id] = worker.id
            self._jobs[offered.id] = (offered, worker.id)
            _log("assigned job to worker", jobID=offered.id, workerID=worker.id, **fields)
            worker.behaviour.assigned(_copy(offered), self)
            return _copy(offered.state)

    def terminate_job(self, job_id: str, reason: TerminateReason) -> JobState | None:
        """TerminateJob: the job's new state, or None when no worker runs it any more."""
        worker = self._workers.get(self._job_worker.get(job_id, ""))
        if worker is None or job_id not in worker.running:
            return None
        worker.behaviour.terminated(job_id)
        if reason is TerminateReason.AGENT_LEFT_ROOM:
            return self.update_job(job_id, JobStatus.JS_FAILED, AGENT_LEFT_ROOM_ERROR)
        return self.update_job(job_id, JobStatus.JS_SUCCESS, "")

    def update_job(self, job_id: str, status: int, error: str) -> JobState | None:
        """A worker's UpdateJobStatus: None for a job it no longer runs."""
        worker = self._workers.get(self._job_worker.get(job_id, ""))
        if worker is None or job_id not in worker.running:
            return None
        state = worker.running[job_id].state
        now = time.time_ns()
        state.updated_at = now
        if state.status == JobStatus.JS_PENDING and status != JobStatus.JS_PENDING:
            state.started_at = now
        state.status = status  # type: ignore[assignment]
        state.error = error
        if status in (JobStatus.JS_SUCCESS, JobStatus.JS_FAILED):
            state.ended_at = now
            del worker.running[job_id]
            self._job_worker.pop(job_id, None)
        return _copy(state)

    def job_failed(self, job_id: str, error: str) -> None:
        """The job's process failed: the worker reports JS_FAILED and the agent leaves the room."""
        held = self._jobs.get(job_id)
        if held is None or self.update_job(job_id, JobStatus.JS_FAILED, error) is None:
            return
        job = held[0]
        if job.state.participant_identity:
            self.on_agent_left(job.room.name, job.state.participant_identity)


def _log(message: str, **fields: str) -> None:
    """livekit-server's message, then its key/value fields, as its logger prints them."""
    logger.info("%s %s", message, " ".join(f"{key}={value!r}" for key, value in fields.items()))


def _copy(message: M) -> M:
    """A copy the caller may change without changing what the stand-in holds."""
    out = type(message)()
    out.CopyFrom(message)
    return out
