"""The agent protocol's ``/agent`` WebSocket, as livekit-server serves it to livekit-agents
workers (livekit/protocol ``livekit_agent.proto``; livekit-server ``pkg/service/agentservice.go``,
``pkg/agent/worker.go``). Served by the LiveKit stand-in's app; every connected worker is an
``AgentWorkers`` entry whose ``WorkerBehaviour`` is the socket.

What is modelled:

* The upgrade needs ``Authorization: Bearer <JWT>`` signed with the stand-in's key and
  carrying the ``video.agent`` grant (what livekit-agents' worker token holds); otherwise
  401 before the upgrade, as livekit-server answers. ``worker_token`` is ignored.
* Messages are binary protobuf frames: ``WorkerMessage`` in, ``ServerMessage`` out. The
  first must be ``RegisterWorkerRequest``; the answer is ``RegisterWorkerResponse`` with
  the worker id (``AW_…``) and ``ServerInfo`` (standard edition, this protocol version).
  Only room jobs (``JT_ROOM``) are taken; another job type closes the socket.
* A worker registered under an agent name gets that name's dispatches; one registered
  without a name gets only rooms' implicit dispatches (the registry's rule).
* A job offer is ``AvailabilityRequest``; the worker's ``AvailabilityResponse`` answers it
  (available with its participant identity, not available, or ``terminate`` = rejected).
  An accepted job is then sent as ``JobAssignment``: the job with the state the server
  recorded, a room join token for the worker's participant identity (kind agent, the
  ``agent`` grant) and the server URL.
* ``UpdateJobStatus`` is applied to the registry's copy of the job (``update_job``); a job
  that ended (success or failure) also takes its agent out of the room.
* ``UpdateWorkerStatus``: the status, load and job count are kept; a worker that says it is
  ``WS_FULL`` is not asked (the next worker of the name is, as livekit-server selects).
* ``WorkerPing`` → ``WorkerPong`` (its timestamp echoed, the server's time in ms).
* Terminating a job (DeleteDispatch, its agent left the room) sends ``JobTermination``.
* The socket closing removes the worker: its jobs are forgotten, their agents leave.

Not modelled: the room's RTC signalling and media — a job's process connecting to the room
with the assignment's token fails against the stand-in (there is no ``/rtc``), so a real
worker's job reports failure once its entrypoint needs the room; ``go_away`` and draining
beyond the status report, job migration and resumption (``migrate_job``, ``resuming``),
``simulate_job``, publisher and participant jobs, load-weighted selection, namespaces and
deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from livekit import api
from livekit.protocol import agent as proto
from livekit.protocol.models import ServerInfo

from .agent_workers import AgentWorkers, Availability, Worker
from .twirp import MiddlewareReject, TokenVerifier

logger = logging.getLogger("services.testing.livekit")

AGENT_PATH = "/agent"
# livekit-server's agent protocol version at the time of livekit-agents 1.x.
AGENT_PROTOCOL_VERSION = 1
SERVER_VERSION = "1.9.0-standin"
SIGNAL_PROTOCOL_VERSION = 16
PERMISSION_DENIED = "permissions denied"
_ENDED = (proto.JobStatus.JS_SUCCESS, proto.JobStatus.JS_FAILED)


@dataclass
class SocketWorker:
    """The `WorkerBehaviour` of one connected worker: what the server sends goes on `outbox`
    (written to the socket in order), what it answers comes back through `receive`."""

    outbox: asyncio.Queue[proto.ServerMessage]
    token_for: Callable[[proto.Job, str], str]  # (job, participant identity) -> room join token
    url: str
    status: int = proto.WorkerStatus.WS_AVAILABLE
    load: float = 0.0
    job_count: int = 0
    sent: list[proto.ServerMessage] = field(default_factory=list)  # everything sent, for tests
    _offers: dict[str, asyncio.Future[proto.AvailabilityResponse]] = field(default_factory=dict)

    def send(self, message: proto.ServerMessage) -> None:
        self.sent.append(message)
        self.outbox.put_nowait(message)

    # -- WorkerBehaviour ---------------------------------------------------------------

    async def availability(self, job: proto.Job) -> Availability:
        if self.status == proto.WorkerStatus.WS_FULL:
            return Availability(available=False)
        answer: asyncio.Future[proto.AvailabilityResponse] = asyncio.get_running_loop().create_future()
        self._offers[job.id] = answer
        self.send(proto.ServerMessage(availability=proto.AvailabilityRequest(job=job)))
        try:
            response = await answer
        finally:
            self._offers.pop(job.id, None)
        return Availability(
            available=response.available,
            terminate=response.terminate,
            participant_identity=response.participant_identity,
        )

    def assigned(self, job: proto.Job, workers: AgentWorkers) -> None:
        token = self.token_for(job, job.state.participant_identity)
        self.send(proto.ServerMessage(assignment=proto.JobAssignment(job=job, url=self.url, token=token)))

    def terminated(self, job_id: str) -> None:
        self.send(proto.ServerMessage(termination=proto.JobTermination(job_id=job_id)))

    # -- what the worker sends ---------------------------------------------------------

    def answered(self, response: proto.AvailabilityResponse) -> None:
        offer = self._offers.get(response.job_id)
        if offer is not None and not offer.done():
            offer.set_result(response)
        else:
            _log("received availability response for unknown job", jobID=response.job_id)

    def closed(self) -> None:
        """The socket went: an offer still waiting is answered "not available" (ErrWorkerClosed)."""
        for offer in self._offers.values():
            if not offer.done():
                offer.set_result(proto.AvailabilityResponse(available=False))


class AgentProtocol:
    """Serves ``/agent`` for the stand-in whose registry is `workers`."""

    def __init__(self, workers: AgentWorkers, tokens: TokenVerifier, *, url: Callable[[], str]) -> None:
        self.workers = workers
        # Checks the workers' tokens, and its key pair signs the join tokens sent to them.
        self._tokens = tokens
        self._url = url
        self.connections: dict[str, SocketWorker] = {}  # worker id -> its socket, while connected
        self._sockets: set[web.WebSocketResponse] = set()

    async def close(self) -> None:
        """Close every worker's socket (the server going away), so the app can stop at once."""
        await asyncio.gather(*(ws.close() for ws in list(self._sockets)), return_exceptions=True)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            grants = self._tokens.grants(request.headers.get("Authorization"))
        except MiddlewareReject as rej:
            return rej.response()
        if not grants.agent:
            return web.Response(status=401, text=PERMISSION_DENIED)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        outbox: asyncio.Queue[proto.ServerMessage] = asyncio.Queue()
        writer = asyncio.get_running_loop().create_task(_write(ws, outbox))
        socket = SocketWorker(outbox, self._join_token, self._ws_url())
        worker: Worker | None = None
        try:
            worker = await self._register(ws, socket)
            if worker is None:
                return ws
            self.connections[worker.id] = socket
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                message = proto.WorkerMessage()
                message.ParseFromString(msg.data)
                self._receive(worker, socket, message)
        finally:
            self._sockets.discard(ws)
            socket.closed()
            if worker is not None:
                self.connections.pop(worker.id, None)
                with contextlib.suppress(KeyError):
                    self.workers.remove(worker.id)
                _log("worker closed", workerID=worker.id, agentName=worker.agent_name)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        return ws

    async def _register(self, ws: web.WebSocketResponse, socket: SocketWorker) -> Worker | None:
        msg = await ws.receive()
        if msg.type != WSMsgType.BINARY:
            await ws.close()
            return None
        first = proto.WorkerMessage()
        first.ParseFromString(msg.data)
        if first.WhichOneof("message") != "register":
            _log("expected register request as first message")
            await ws.close()
            return None
        request = first.register
        if request.type != proto.JobType.JT_ROOM:
            _log("unsupported job type", jobType=proto.JobType.Name(request.type))
            await ws.close()
            return None
        worker = self.workers.attach(request.agent_name, socket)
        info = ServerInfo(
            edition=ServerInfo.Edition.Standard,
            version=SERVER_VERSION,
            protocol=SIGNAL_PROTOCOL_VERSION,
            agent_protocol=AGENT_PROTOCOL_VERSION,
            node_id="ND_standin",
        )
        # Queued before any offer can be: the registry may ask the worker as soon as it is attached.
        socket.send(proto.ServerMessage(register=proto.RegisterWorkerResponse(worker_id=worker.id, server_info=info)))
        return worker

    def _receive(self, worker: Worker, socket: SocketWorker, message: proto.WorkerMessage) -> None:
        which = message.WhichOneof("message")
        if which == "availability":
            socket.answered(message.availability)
        elif which == "update_job":
            self._update_job(worker, message.update_job)
        elif which == "update_worker":
            update = message.update_worker
            if update.HasField("status"):
                socket.status = update.status
            socket.load = update.load
            socket.job_count = update.job_count
        elif which == "ping":
            pong = proto.WorkerPong(last_timestamp=message.ping.timestamp, timestamp=int(time.time() * 1000))
            socket.send(proto.ServerMessage(pong=pong))
        else:
            _log("ignored worker message", workerID=worker.id, kind=str(which))

    def _update_job(self, worker: Worker, update: proto.UpdateJobStatus) -> None:
        if self.workers.worker_of(update.job_id) != worker.id:
            _log("job status update from a worker not running it", jobID=update.job_id, workerID=worker.id)
            return
        held = self.workers.job(update.job_id)
        state = self.workers.update_job(update.job_id, update.status, update.error)
        if state is None or held is None or update.status not in _ENDED:
            return
        if held.state.participant_identity:
            # The job's process has ended: its participant is no longer in the room.
            self.workers.on_agent_left(held.room.name, held.state.participant_identity)

    def _join_token(self, job: proto.Job, identity: str) -> str:
        grants = api.VideoGrants(
            room_join=True,
            room=job.room.name,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_update_own_metadata=True,
            agent=True,
        )
        signer = api.AccessToken(self._tokens.api_key, self._tokens.api_secret)
        token = signer.with_identity(identity).with_kind("agent")
        return token.with_grants(grants).with_attributes({"lk.agent.name": job.agent_name}).to_jwt()

    def _ws_url(self) -> str:
        url = self._url()
        return "ws" + url[len("http") :] if url.startswith("http") else url


async def _write(ws: web.WebSocketResponse, outbox: asyncio.Queue[proto.ServerMessage]) -> None:
    while True:
        message = await outbox.get()
        await ws.send_bytes(message.SerializeToString())


def _log(message: str, **fields: str) -> None:
    logger.info("%s %s", message, " ".join(f"{key}={value!r}" for key, value in fields.items()))
