"""The floor (scenario 7): the least a Python process must do for a webhook — verify
LiveKit's signature, keep SIP joins, build the job metadata with the persona it
already holds in memory, and dispatch — with no gRPC hop and no second process.

It does the same LiveKit work as the mesh, so the mesh / floor ratios measure the
mesh's own overhead (the two gRPC hops, the process boundaries and what the services
do around them) and nothing else: the same calls per webhook as DispatcherService
(ListRooms beside ListDispatch, then CreateDispatch only when our agent is not there yet with
a live job: the exactly-one guard, without the claim; then ListDispatch until a worker
holds the job, on DispatcherService's read schedule), made through DispatcherService's own LiveKit
adapter (LiveKitDispatchTransport: the same aiohttp pool, room token reuse and
protobuf bodies), so the LiveKit stand-in answers both alike — rooms the load generator
created for each call, a worker taking every dispatch's job. Scenario 7p records the
LiveKit calls per webhook of mesh and floor, and the report checks they match. The
gateway's own pieces do the rest (WebhookVerifier, classify, the shared job-metadata
codec), on uvicorn with the gateway's settings and on the services' event loop.

    python -m bench.floor --personas FILE --livekit-url URL --api-key K --api-secret S
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.common import event_loop, job_metadata
from services.common.default_persona import default_persona
from services.dispatcher.config import JobConfig
from services.dispatcher.jobs import poll_delays
from services.dispatcher.livekit_transport import LiveKitDispatchTransport
from services.dispatcher.transport import DispatchRecord, LiveKitCallError
from services.persona.mapping import persona_from_json
from services.webhook_gateway.config import HttpServerConfig
from services.webhook_gateway.events import Ignored, classify
from services.webhook_gateway.server import http_settings
from services.webhook_gateway.verification import MalformedEventError, SignatureError, WebhookVerifier

WEBHOOK_PATH = "/livekit-webhook"
# One LiveKit request's bound; the stand-in answers at once, this only keeps a hang finite.
LIVEKIT_TIMEOUT_SECONDS = 2.5


async def _with_job(livekit: LiveKitDispatchTransport, created: DispatchRecord) -> DispatchRecord | None:
    """ListDispatch until a worker holds the job, on DispatcherService's own read schedule."""
    config = JobConfig()
    loop = asyncio.get_running_loop()
    give_up = loop.time() + config.wait_seconds
    delays = poll_delays(config)
    current: DispatchRecord | None = created
    while current is not None and current.live_job is None and loop.time() < give_up:
        await asyncio.sleep(min(next(delays), give_up - loop.time()))
        listed = await livekit.list(created.room, timeout=LIVEKIT_TIMEOUT_SECONDS)
        current = next((d for d in listed if d.dispatch_id == created.dispatch_id), None)
    return current if current is not None and current.live_job is not None else None


async def _list_in_room(livekit: LiveKitDispatchTransport, room: str) -> list[DispatchRecord] | None:
    """ListRooms beside ListDispatch, as DispatcherService sends them (one round trip on
    the call's path, not two); None when the room is gone, the listing then cancelled
    (LiveKit holds a ListDispatch on a missing room until its own deadline)."""
    listing = asyncio.ensure_future(livekit.list(room, timeout=LIVEKIT_TIMEOUT_SECONDS))
    try:
        if await livekit.room_exists(room, timeout=LIVEKIT_TIMEOUT_SECONDS):
            return await listing
        return None
    finally:
        if not listing.done():
            listing.cancel()
            await asyncio.gather(listing, return_exceptions=True)


def create_floor_app(
    personas: dict[str, Persona], livekit_url: str, api_key: str, api_secret: str, agent_name: str
) -> Starlette:
    verifier = WebhookVerifier(api_key, api_secret)
    # One client (one aiohttp pool, born inside the loop on first use) for the process, as the dispatcher has.
    livekit = LiveKitDispatchTransport(livekit_url, api_key, api_secret)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await livekit.aclose()

    async def receive(request: Request) -> Response:
        raw = await request.body()
        try:
            event = verifier.verify(raw, request.headers.get("authorization"))
        except SignatureError as exc:
            return JSONResponse({"status": "unauthorized", "detail": str(exc)}, status_code=401)
        except MalformedEventError as exc:
            return JSONResponse({"status": "malformed", "detail": str(exc)}, status_code=400)
        call = classify(event)
        if isinstance(call, Ignored):
            return JSONResponse({"status": "ignored", "detail": call.reason})
        persona = personas.get(call.dialed_number)
        metadata = AgentJobMetadata(
            schema_version=job_metadata.CURRENT_SCHEMA_VERSION,
            call=CallFacts(
                dialed_number=call.dialed_number,
                caller_number=call.caller_number,
                sip_call_id=call.sip_call_id,
                sip_trunk_id=call.sip_trunk_id,
                room=call.room,
                participant_identity=call.participant_identity,
            ),
            persona=persona if persona is not None else default_persona(),
            persona_source=PersonaSource.PERSONA_SOURCE_CACHE if persona else PersonaSource.PERSONA_SOURCE_DEFAULT,
            trace_id=call.event_id,
        )
        encoded = job_metadata.encode(metadata)
        try:
            listed = await _list_in_room(livekit, call.room)
            if listed is None:
                return JSONResponse({"status": "ignored", "detail": "room gone"})
            existing = [d for d in listed if d.agent_name == agent_name and d.live_job is not None]
            dispatch: DispatchRecord | None
            if existing:
                dispatch, already = existing[0], True
            else:
                created = await livekit.create(call.room, agent_name, encoded, timeout=LIVEKIT_TIMEOUT_SECONDS)
                dispatch, already = await _with_job(livekit, created), False
        except LiveKitCallError as exc:
            return JSONResponse({"status": "dispatch_failed", "detail": str(exc)}, status_code=503)
        if dispatch is None:
            return JSONResponse({"status": "dispatch_failed", "detail": "no agent worker"}, status_code=503)
        return JSONResponse(
            {
                "status": "dispatched",
                "dispatch_id": dispatch.dispatch_id,
                "already_existed": already,
                "room": call.room,
                "persona_id": metadata.persona.persona_id,
                "persona_source": PersonaSource.Name(metadata.persona_source),
                "default_reason": "" if persona else "not in memory",
            }
        )

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"])], lifespan=lifespan)


def load_personas(path: Path) -> dict[str, Persona]:
    """{dialed number (E.164): persona JSON as the CRM serves it} -> mapped personas."""
    return {number: persona_from_json(body) for number, body in json.loads(path.read_text()).items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--personas", type=Path, required=True, help="JSON {E.164 number: persona body}")
    parser.add_argument("--livekit-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--agent-name", default="friday-ai-agent")
    args = parser.parse_args(argv)
    app = create_floor_app(
        load_personas(args.personas), args.livekit_url, args.api_key, args.api_secret, args.agent_name
    )
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it uvicorn's two writes per response (head, body) wait on a delayed ACK every call.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    # The gateway's HTTP settings (its h11 protocol with read deadlines and its caps, from
    # services/webhook_gateway/server.py, at their defaults), so only the path differs.
    config = uvicorn.Config(app, **http_settings(HttpServerConfig.from_env({})))
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await task

    # The services' loop and start-up heap freeze (services/common/event_loop.py): uvicorn
    # picks uvloop only in Server.run(), not for serve() inside a loop we start ourselves.
    event_loop.run(serve())


if __name__ == "__main__":
    main()
