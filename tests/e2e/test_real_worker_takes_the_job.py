"""The real livekit-agents worker takes the job: the in-process mesh (no scripted worker) and
`friday agent dev` as a child process, connected to the LiveKit stand-in's `/agent`
WebSocket (services/testing/agent_protocol.py). A SIP join webhook → the worker is offered
the job and accepts it → its job process reads the metadata (persona, source, trace id) →
one running job on the dispatch; a redelivery adds none; DeleteDispatch sends
JobTermination and the worker ends the job.

The stand-in does not speak RTC signalling: the job's room connection is held unanswered
(`rtc_hold_seconds`) so the job stays up, waiting for its room, until it is terminated.
Everything up to the room connection is asserted, nothing after it.

`dev` mode: load threshold off (two shared cores would otherwise mark the worker full,
and LiveKit does not offer jobs to a full worker), no idle processes, a random HTTP port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from livekit import api
from livekit.protocol.agent import JobStatus

from services.testing.livekit_webhooks import sip_participant_joined
from services.testing.mesh import Mesh
from services.testing.mesh_options import MeshOptions
from tests.child_process import REPO_ROOT, ProcessOutput

pytestmark = pytest.mark.real_worker

AGENT = "friday-ai-agent"
ROOM = "call-real-worker"
DIALED = "+918655701159"
PERSONA = {"persona_id": "crm-real-worker", "persona_name": "Real", "personality": "You are the real worker's persona."}
START_S = 30  # the worker's start-up and the job process's imports, on two shared cores
WAIT_S = 15
SHUTDOWN_GRACE_S = 15  # livekit-agents job_proc_lazy_main: how long a shut-down job's entrypoint may take
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _records(output: ProcessOutput, message: str) -> list[dict[str, object]]:
    """The JSON fields of the worker's log lines saying `message` (dev mode: text, then {fields})."""
    found = []
    for line in list(output.lines):
        plain = ANSI.sub("", line)
        if f" - {message} " in plain and "{" in plain:
            found.append(json.loads(plain[plain.index("{") :]))
    return found


async def _until(predicate: Callable[[], object], timeout: float, what: str, output: ProcessOutput) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s; worker output:\n{''.join(output.lines[-60:])}")
        await asyncio.sleep(0.1)


async def test_the_real_worker_takes_the_dispatched_job_and_ends_it_when_the_dispatch_goes() -> None:
    async with Mesh(MeshOptions(livekit_worker=None)) as mesh:
        lk = mesh.livekit
        lk.rtc_hold_seconds = 60
        mesh.crm.set_persona(DIALED.removeprefix("+91"), PERSONA)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "LIVEKIT_URL": lk.url,
            "LIVEKIT_API_KEY": lk.api_key,
            "LIVEKIT_API_SECRET": lk.api_secret,
            "FRIDAY_VAD": "none",
            # A self-hosted LiveKit: the openai stack (never used: the room connection ends the job
            # first), so the start-up check passes without real credentials.
            "FRIDAY_SPEECH_STACK": "openai",
            "OPENAI_API_KEY": "sk-test-not-used",
            "FRIDAY_SIP_WAIT_SECONDS": "60",
        }
        for name in ("AGENT_TO_DISPATCH", "LIVEKIT_AGENT_NAME", "LIVEKIT_AGENT_NAME_OVERRIDE"):
            env.pop(name, None)
        worker = subprocess.Popen(  # noqa: ASYNC220 - ProcessOutput pumps a Popen's pipe on a thread
            [sys.executable, "-m", "services.cli", "agent", "dev"],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = ProcessOutput(worker)
        try:
            await _until(lambda: lk.workers.workers(AGENT), START_S, "the worker registers", output)
            (registered,) = lk.workers.workers(AGENT)
            socket = lk.agent_protocol.connections[registered.id]
            await _until(lambda: _records(output, "registered worker"), WAIT_S, "its registration logged", output)
            assert _records(output, "registered worker")[0]["id"] == registered.id

            event = sip_participant_joined(room=ROOM, dialed_number=DIALED)
            response = await mesh.deliver(event)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["status"] == "dispatched" and answer["persona_id"] == "crm-real-worker"
            await lk.settle()

            # Offered, accepted, assigned: ListDispatch shows the real worker's running job.
            (dispatch,) = lk.dispatches(ROOM)
            assert dispatch.id == answer["dispatch_id"]
            (job,) = dispatch.state.jobs
            assert job.state.status == JobStatus.JS_RUNNING and job.state.worker_id == registered.id
            assert job.state.participant_identity == "agent-" + job.id
            kinds = [m.WhichOneof("message") for m in socket.sent]
            assert kinds.count("availability") == 1 and kinds.count("assignment") == 1

            # The job process read the dispatched metadata.
            await _until(lambda: _records(output, "job setup read"), START_S, "the job reads its metadata", output)
            (setup,) = _records(output, "job setup read")
            assert setup["persona_id"] == "crm-real-worker" and setup["persona_source"] == "PERSONA_SOURCE_CRM"
            assert setup["trace_id"] == answer["trace_id"] and setup["job_id"] == job.id
            assert setup["room"] == ROOM and setup["fallback_reason"] == ""

            # A redelivery finds the dispatch and its job: nothing new is offered.
            again = await mesh.deliver(event)
            assert again.status_code == 200, again.text
            assert again.json().get("dispatch_id", dispatch.id) == dispatch.id
            await lk.settle()
            assert [d.id for d in lk.dispatches(ROOM)] == [dispatch.id]
            assert len(lk.dispatches(ROOM)[0].state.jobs) == 1
            assert [m.WhichOneof("message") for m in socket.sent].count("availability") == 1

            # DeleteDispatch: JobTermination reaches the worker, which ends the job and says so.
            async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as client:
                await client.agent_dispatch.delete_dispatch(dispatch.id, ROOM)
            await lk.settle()
            terminations = [m.termination.job_id for m in socket.sent if m.WhichOneof("message") == "termination"]
            assert terminations == [job.id]

            held = lk.workers.job(job.id)
            assert held is not None and held.state.status == JobStatus.JS_SUCCESS  # TerminateJob's own update
            assert lk.agents(ROOM) == []

            def shut_down() -> list[dict[str, object]]:
                return [r for r in _records(output, "shutting down job task") if r.get("job_id") == job.id]

            # livekit-agents waits up to 15 s for an entrypoint to return after a shutdown request
            # (ours is waiting for its room, and does not watch for shutdown), then cancels it.
            await _until(shut_down, SHUTDOWN_GRACE_S + 8, "the job process shuts the job down", output)
            (closed,) = shut_down()
            assert closed["reason"] == "parent process shutdown"  # a ShutdownRequest, as JobTermination sends
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                # Off the loop: the worker's socket closing is answered by the stand-in in this loop.
                await asyncio.to_thread(worker.wait, 20)
            except subprocess.TimeoutExpired:
                worker.kill()
                await asyncio.to_thread(worker.wait, 5)
