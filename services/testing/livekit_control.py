"""The LiveKit stand-in's control API, for tests and the benchmark driving it as a process
(`python -m services.testing.livekit_api`). Bodies are small JSON objects.

    GET  /_standin/state           everything below, as JSON (see `state`)
    POST /_standin/workers         {"agent_name": "friday-ai-agent", "accept_delay": 0.0, "outcome": "runs"}
                                   -> {"worker_id": "AW_…"}; outcome: runs | fails | rejects | full
    POST /_standin/workers/remove  {"worker_id": "AW_…"}         one worker disconnects
    POST /_standin/workers/absent  {"agent_name": "…"}           -> {"removed": [ids]}: every worker of the name goes
    POST /_standin/rooms           {"names": ["call-1", …]} or {"name": "call-1"}   rooms exist from now on
    POST /_standin/rooms/delete    {"name": "call-1"}            -> {"deleted": true|false}
    POST /_standin/sip_inbound_trunks  {"trunk_id": "ST_…", "numbers": ["+14155550100"]}
    POST /_standin/settle          returns once every job launch and termination under way has finished
    POST /_standin/fail_next       {"n": 2, "status": 503, "code": "unavailable"}
    POST /_standin/latency         {"seconds": 0.1}
    POST /_standin/delay_next      {"n": 1, "seconds": 1.3, "method": "CreateDispatch"}  (method optional)
    POST /_standin/garble_next     {"n": 1, "method": "CreateDispatch"}  (method optional)
    POST /_standin/reset           forget rooms, dispatches, jobs, calls, trunks and faults (workers stay)
    POST /_standin/reset_calls     zero the call log and the create counter only
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import json_format
from livekit.protocol.agent import JobStatus

from ._server import read_json
from .agent_workers import JobOutcome, ScriptedBehaviour, Worker
from .livekit_rooms import Rooms
from .livekit_sip import InboundTrunks

if TYPE_CHECKING:
    from .livekit_api import LiveKitStandIn


async def handle(lk: LiveKitStandIn, name: str, request: web.Request) -> web.StreamResponse | None:
    """The answer to one control request, or None for an endpoint this API does not have."""
    if name == "state" and request.method == "GET":
        return web.json_response(lk.state())
    if request.method != "POST":
        return None
    data = await read_json(request)
    if name == "workers":
        worker = lk.workers.register(
            str(data["agent_name"]),
            accept_delay=float(data.get("accept_delay", 0.0)),
            outcome=JobOutcome(data.get("outcome", JobOutcome.RUNS.value)),
        )
        return web.json_response({"worker_id": worker.id})
    if name == "workers/remove":
        try:
            lk.workers.remove(str(data["worker_id"]))
        except KeyError:
            return web.json_response({"error": f"no worker {data['worker_id']!r}"}, status=404)
        return web.json_response({"ok": True})
    if name == "workers/absent":
        return web.json_response({"removed": [w.id for w in lk.workers.set_absent(str(data["agent_name"]))]})
    if name == "rooms":
        names = [str(n) for n in data.get("names", [])] + ([str(data["name"])] if "name" in data else [])
        for room in names:
            lk.create_room(room)
        return web.json_response({"rooms": names})
    if name == "rooms/delete":
        return web.json_response({"deleted": lk.delete_room(str(data["name"]))})
    if name == "sip_inbound_trunks":
        lk.add_inbound_trunk(str(data["trunk_id"]), [str(n) for n in data.get("numbers", [])])
        return web.json_response({"ok": True})
    if name == "settle":
        await lk.settle()
        return web.json_response({"ok": True})
    if name == "fail_next":
        lk.fail_next(int(data.get("n", 1)), int(data.get("status", 503)), str(data.get("code", "unavailable")))
    elif name == "latency":
        lk.set_latency(float(data["seconds"]))
    elif name == "delay_next":
        method = data.get("method")
        lk.delay_next(int(data.get("n", 1)), float(data["seconds"]), str(method) if method else None)
    elif name == "garble_next":
        method = data.get("method")
        lk.garble_next(int(data.get("n", 1)), str(method) if method else None)
    elif name == "reset":
        lk.reset()
    elif name == "reset_calls":
        lk.reset_calls()
    else:
        return None
    return web.json_response({"ok": True, "create_count": lk.create_count(), "fail_next": lk.failures_pending})


def state(lk: LiveKitStandIn, rooms: Rooms, trunks: InboundTrunks) -> dict[str, Any]:
    """`dispatches`: per room, the ones CreateDispatch made (as AgentDispatch JSON; the room's
    implicit one is under `rooms`); `jobs`: every job a worker took, as the worker reports it."""
    dispatches: dict[str, list[dict[str, Any]]] = {}
    room_states: dict[str, dict[str, Any]] = {}
    for name in rooms.names():
        record = rooms.get(name)
        assert record is not None
        made = [_json(d) for d in record.dispatch_list()]
        if made:
            dispatches[name] = made
        room_states[name] = {
            "sid": record.proto.sid,
            "implicit_dispatch": record.implicit_dispatch_id,
            "agents": list(record.agents),
        }
    return {
        "create_count": lk.create_count(),
        "fail_next": lk.failures_pending,
        "calls": [asdict(c) for c in lk.calls],
        "dispatches": dispatches,
        "rooms": room_states,
        "workers": [_worker(w) for w in lk.workers.workers()],
        "jobs": [
            {
                "id": job.id,
                "dispatch_id": job.dispatch_id,
                "room": job.room.name,
                "agent_name": job.agent_name,
                "worker_id": job.state.worker_id,
                "status": JobStatus.Name(job.state.status),
                "error": job.state.error,
                "participant_identity": job.state.participant_identity,
                "started_at": job.state.started_at,
                "updated_at": job.state.updated_at,
                "ended_at": job.state.ended_at,
            }
            for job in lk.workers.jobs()
        ],
        "sip_inbound_trunks": [_json(t) for t in trunks.all()],
    }


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _worker(worker: Worker) -> dict[str, Any]:
    out: dict[str, Any] = {"id": worker.id, "agent_name": worker.agent_name, "running_jobs": len(worker.running)}
    if isinstance(worker.behaviour, ScriptedBehaviour):
        out.update(accept_delay=worker.behaviour.accept_delay, outcome=worker.behaviour.outcome.value)
    return out
