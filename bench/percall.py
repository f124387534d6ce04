"""One service method's own work per call, in process and without gRPC: the servicer
called N times in a row on a warm path, for profiles and instruction counts that do
not depend on what else the machine runs (the runtime's per-call cost is measured
apart, against a bare server; see README Performance).

    python -m bench.percall persona --calls 5000              # CPU µs per call
    python -m bench.percall persona --calls 5000 --profile    # cProfile, top 25
    valgrind --tool=callgrind python -m bench.percall persona --calls 0|2000
        # (instructions at 2000 − at 0) / 2000 = instructions per call

`persona`: a warm cache-hit GetPersona (a cacheable source, as the bench's CRM);
`campaign`: the same with a campaign answer (the per-call selection on top);
`crm`: a GetPersona that misses the cache (a new number each call) and fetches the
persona from a CRM stand-in process through the CRM client (PersonaService's real source);
`dispatch`: DispatchAgent for a new room each call, against a LiveKit stand-in process
with a worker (claim, ListRooms ∥ ListDispatch, CreateDispatch, the job confirmation);
`floor`: the floor's LiveKit calls for the same webhook through the same adapter
(bench/floor.py), nothing else: what DispatcherService's own work is measured against.
The stand-in runs in a process of its own, so its CPU is not counted.
`gateway`: signed participant_joined webhooks through the gateway on uvicorn in this
process, everything else in processes of its own (bench/gateway_percall.py).

`get-over-grpc` / `check-over-grpc` / `dispatch-over-grpc` drive a running server instead
(`--target`), for callgrind on the server process: 200 calls of warm-up, then `--calls` from
`--concurrency` callers on one channel (bench/grpc_load.py's loop; 1 = sequential, as the
bench's 7p).

    valgrind --tool=callgrind python -m services.cli persona serve --port 50151 &
    python -m bench.percall get-over-grpc --target 127.0.0.1:50151 --number +918655701159 --calls 0|2000
        # then stop the server (SIGTERM); a run with 0 calls is the baseline

`dispatch-over-grpc` calls DispatchAgent (a new room each call, the `dispatch` kind's request)
on a DispatcherService pointed at a LiveKit stand-in (`--livekit`, its origin) with this
module's key and secret; the driver registers the worker and creates the rooms.

    python -m services.testing.livekit_api --port 7890 --api-key percall-key \
        --api-secret percall-secret-that-is-at-least-32-bytes --log-level WARNING &
    LIVEKIT_URL=http://127.0.0.1:7890 LIVEKIT_API_KEY=percall-key \
        LIVEKIT_API_SECRET=percall-secret-that-is-at-least-32-bytes REDIS_URL= LOG_LEVEL=WARNING \
        valgrind --tool=callgrind python -m services.cli dispatcher serve --port 50161 --metrics-port 0 &
    python -m bench.percall dispatch-over-grpc --target 127.0.0.1:50161 \
        --livekit http://127.0.0.1:7890 --concurrency 1 --calls 0|500"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import grpc
import httpx
from prometheus_client import CollectorRegistry

from bench.floor import LIVEKIT_TIMEOUT_SECONDS, _with_job
from bench.gateway_percall import gateway_under_load
from bench.grpc_load import GrpcJob
from bench.personas import CAMPAIGN_CALLER, CAMPAIGN_NUMBER, WARM_NUMBER, _campaign_body, _persona_body, crm_segment
from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc
from friday.dispatcher.v1.dispatcher_service_pb2 import DispatchAgentRequest
from friday.persona.v1 import persona_service_pb2
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.common import event_loop, job_metadata
from services.common.leases import InMemoryLeases
from services.dispatcher.claims import CallClaims
from services.dispatcher.config import DispatcherConfig, LiveKitConfig
from services.dispatcher.dispatcher import Dispatcher
from services.dispatcher.livekit_transport import LiveKitDispatchTransport
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.servicer import DispatcherServicer
from services.persona.answers import answer_from_json
from services.persona.cache import PersonaCache
from services.persona.config import CrmConfig, PersonaConfig
from services.persona.lookup import PersonaLookup
from services.persona.mapping import persona_from_json
from services.persona.memory_cache import MemoryCache
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber
from services.persona.server import build_source
from services.persona.servicer import PersonaServicer
from services.persona.sources import SourceAnswer
from services.testing.crm import BASE_PATH as CRM_BASE_PATH

Item = TypeVar("Item")


class _MemorySource:
    """A cacheable source answering from memory: after the first call every lookup is a cache hit."""

    cacheable = True

    def __init__(self, answers: dict[str, SourceAnswer]) -> None:
        self._answers = answers

    async def fetch(self, number: DialedNumber, deadline: float) -> SourceAnswer | None:
        return self._answers.get(number.e164)

    def default_persona(self) -> Persona | None:
        return None

    async def probe(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class _Context:
    """What GetPersona reads of a grpc.aio ServicerContext on its success path."""

    def time_remaining(self) -> float:
        return 5.0

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


async def _per_call(kind: str, calls: int, work: Callable[[], Awaitable[None]], profile: str | None) -> dict[str, Any]:
    """`work()` makes `calls` calls, after the caller's warm-up: this process's CPU per
    call, and with `profile` the cProfile rows it matches."""
    profiler = cProfile.Profile() if profile else None
    began = time.process_time()
    if profiler is not None:
        profiler.enable()
    await work()
    if profiler is not None:
        profiler.disable()
    spent = time.process_time() - began
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile or ".", 40)
    return {"kind": kind, "calls": calls, "cpu_us_per_call": round(spent / calls * 1e6, 2) if calls else None}


async def _each(items: Sequence[Item], one: Callable[[Item], Awaitable[None]]) -> None:
    for item in items:
        await one(item)


def _persona_servicer() -> PersonaServicer:
    answers = {
        WARM_NUMBER: answer_from_json(_persona_body(0), persona_id=WARM_NUMBER),
        CAMPAIGN_NUMBER: answer_from_json(_campaign_body(), persona_id=CAMPAIGN_NUMBER),
    }
    metrics = PersonaMetrics(CollectorRegistry())
    lookup = PersonaLookup(_MemorySource(answers), PersonaCache(MemoryCache(1000)), metrics, default_region="US")
    return PersonaServicer(lookup, metrics, budget_seconds=3.0)


async def _run(kind: str, calls: int, profile: str | None) -> dict[str, Any]:
    servicer = _persona_servicer()
    if kind == "campaign":
        request = persona_service_pb2.GetPersonaRequest(
            dialed_number=CAMPAIGN_NUMBER, allow_default=True, caller_number=CAMPAIGN_CALLER
        )
    else:
        request = persona_service_pb2.GetPersonaRequest(dialed_number=WARM_NUMBER, allow_default=True)
    context: Any = _Context()
    for _ in range(200):  # fills the cache and every lazy path
        await servicer.get_persona_encoded(request, context)
    profiler = cProfile.Profile() if profile else None
    began = time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(calls):
        # What the server serves: the response serialized, so a cut that only moves work there shows.
        await servicer.get_persona_encoded(request, context)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile or ".", 25)
    spent = time.process_time() - began
    return {"kind": kind, "calls": calls, "cpu_us_per_call": round(spent / calls * 1e6, 2) if calls else None}


def _crm_numbers(count: int) -> list[str]:
    # A block of its own, apart from the bench's warm, burst, cold and campaign numbers.
    if count > 10_000:
        raise ValueError("crm: at most 10,000 numbers (warm-up included)")
    return [f"+1415556{i:04d}" for i in range(count)]


async def _run_crm(kind: str, calls: int, profile: str | None) -> dict[str, Any]:
    warmup = 200
    numbers = _crm_numbers(warmup + calls)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as personas:
        json.dump({crm_segment(number): _persona_body(i) for i, number in enumerate(numbers)}, personas)
        personas.flush()
        child, origin = await _standin("services.testing.crm", "--personas", personas.name)
    try:
        metrics = PersonaMetrics(CollectorRegistry())
        config = PersonaConfig(crm=CrmConfig(api_base=f"{origin}{CRM_BASE_PATH}"), default_region="US")
        source = build_source(config, metrics)
        lookup = PersonaLookup(source, PersonaCache(MemoryCache(2 * len(numbers))), metrics, default_region="US")
        servicer = PersonaServicer(lookup, metrics, budget_seconds=3.0)
        context: Any = _Context()

        async def one(number: str) -> None:
            request = persona_service_pb2.GetPersonaRequest(dialed_number=number, allow_default=True)
            response = await servicer.GetPersona(request, context)
            if response.source != PersonaSource.PERSONA_SOURCE_CRM:
                raise RuntimeError(f"{number}: expected a CRM answer, got {response.source}")
            response.SerializeToString()

        for number in numbers[:warmup]:
            await one(number)
        result = await _per_call(kind, calls, lambda: _each(numbers[warmup:], one), profile)
        await source.aclose()
    finally:
        child.terminate()
        await child.wait()
    return result


_AGENT = "friday-ai-agent"
_KEY, _SECRET = "percall-key", "percall-secret-that-is-at-least-32-bytes"


async def _standin(module: str, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """A stand-in in a process of its own (so its CPU is not counted), and its origin."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--port", "0", *args, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    while not (line := (await child.stdout.readline()).decode()).startswith("READY "):
        if not line:
            raise RuntimeError(f"{module} exited before it was ready")
    return child, line.split()[1]


async def _livekit_standin() -> tuple[asyncio.subprocess.Process, str]:
    child, origin = await _standin(
        "services.testing.livekit_api", "--api-key", _KEY, "--api-secret", _SECRET, "--log-level", "WARNING"
    )
    async with httpx.AsyncClient(timeout=30) as client:
        (await client.post(f"{origin}/_standin/workers", json={"agent_name": _AGENT})).raise_for_status()
    return child, origin


async def _create_rooms(origin: str, rooms: list[str]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        (await client.post(f"{origin}/_standin/rooms", json={"names": rooms})).raise_for_status()


@functools.cache
def _persona() -> Persona:
    return persona_from_json(_persona_body(0), persona_id=WARM_NUMBER)


def _job_metadata(room: str) -> AgentJobMetadata:
    return AgentJobMetadata(
        call=CallFacts(
            dialed_number=WARM_NUMBER, caller_number="+14155550100", sip_call_id=f"SCL_{room}", room=room,
            participant_identity="sip_+14155550100",
        ),
        persona=_persona(),
        persona_source=PersonaSource.PERSONA_SOURCE_CACHE,
        trace_id=f"trace-{room}",
    )  # fmt: skip


async def _run_livekit(kind: str, calls: int, profile: str | None) -> dict[str, Any]:
    warmup = 50
    rooms = [f"percall-{i}" for i in range(warmup + calls)]
    child, origin = await _livekit_standin()
    try:
        if kind == "dispatch":
            config = DispatcherConfig(livekit=LiveKitConfig(origin, _KEY, _SECRET))
            metrics = DispatcherMetrics(CollectorRegistry())
            transport = LiveKitDispatchTransport(origin, _KEY, _SECRET)
            claims = CallClaims(InMemoryLeases(), metrics, fallback=InMemoryLeases())
            dispatcher = Dispatcher(transport, claims, config, metrics)
            servicer = DispatcherServicer(dispatcher, metrics, config.max_budget_seconds)
            context: Any = _Context()

            async def one(room: str) -> None:
                request = DispatchAgentRequest(room=room, agent_name=_AGENT, metadata=_job_metadata(room))
                (await servicer.DispatchAgent(request, context)).SerializeToString()

            close = dispatcher.aclose
        else:
            transport = LiveKitDispatchTransport(origin, _KEY, _SECRET)

            async def one(room: str) -> None:
                encoded = job_metadata.encode(_job_metadata(room))
                if not await transport.room_exists(room, timeout=LIVEKIT_TIMEOUT_SECONDS):
                    raise RuntimeError(f"room {room} missing")
                listed = await transport.list(room, timeout=LIVEKIT_TIMEOUT_SECONDS)
                if not [d for d in listed if d.agent_name == _AGENT and d.live_job is not None]:
                    created = await transport.create(room, _AGENT, encoded, timeout=LIVEKIT_TIMEOUT_SECONDS)
                    if await _with_job(transport, created) is None:
                        raise RuntimeError(f"no job in {room}")

            close = transport.aclose
        # Rooms younger than the dispatcher (by more than the clock skew it allows), as in a
        # dispatcher that has run a while: otherwise each call's room would be re-read in the
        # background for a predecessor's create that may still land (reconcile.py).
        await asyncio.sleep(2.5)
        await _create_rooms(origin, rooms)
        for room in rooms[:warmup]:
            await one(room)
        result = await _per_call(kind, calls, lambda: _each(rooms[warmup:], one), profile)
        await close()
    finally:
        child.terminate()
        await child.wait()
    return result


async def _run_gateway(kind: str, calls: int, profile: str | None, *, report_calls: bool) -> dict[str, Any]:
    async with gateway_under_load(calls, report_calls=report_calls) as send:
        return await _per_call(kind, calls, send, profile)


async def _drive(kind: str, target: str, number: str, calls: int, concurrency: int) -> dict[str, Any]:
    job = GrpcJob(
        {
            "target": target,
            "method": "get_persona" if kind == "get-over-grpc" else "health",
            "number": number,
            "warmup": 200,
            "concurrency": concurrency,
            "count": calls,
        }
    )
    await job.prepare()
    result = await job.run()  # with 0 calls: none sent, the channel closed
    return {"kind": kind, "calls": calls, "ok": result["ok"], "errors": result["errors"]}


async def _drive_dispatch(target: str, livekit: str, calls: int, concurrency: int) -> dict[str, Any]:
    """DispatchAgent on a running DispatcherService: 200 sequential calls of warm-up, then
    `calls` from `concurrency` callers, each for a room of its own that the stand-in holds."""
    warmup = 200
    # Fresh names each run: the stand-in may outlive one run, and a room already
    # dispatched would answer already_existed instead of a new dispatch.
    prefix = f"percall-grpc-{secrets.token_hex(4)}"
    rooms = [f"{prefix}-{i}" for i in range(warmup + calls)]
    async with httpx.AsyncClient(timeout=30) as client:
        (await client.post(f"{livekit}/_standin/workers", json={"agent_name": _AGENT})).raise_for_status()
    # Rooms younger than the dispatcher by more than the clock skew it allows, as in
    # `dispatch`: a server started just now would re-read each room in the background.
    await asyncio.sleep(2.5)
    await _create_rooms(livekit, rooms)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = dispatcher_service_pb2_grpc.DispatcherServiceStub(channel)

        async def one(room: str) -> None:
            request = DispatchAgentRequest(room=room, agent_name=_AGENT, metadata=_job_metadata(room))
            response = await stub.DispatchAgent(request, timeout=5.0)
            if response.already_existed or not response.job.job_id:
                raise RuntimeError(f"{room}: expected a new dispatch with a live job, got {response}")

        for room in rooms[:warmup]:
            await one(room)
        measured = iter(rooms[warmup:])

        async def caller() -> None:
            for room in measured:  # one shared iterator: each room is dispatched once
                await one(room)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    return {"kind": "dispatch-over-grpc", "calls": calls, "concurrency": concurrency, "wall_s": round(wall, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.percall", description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind",
        choices=[
            "persona", "campaign", "crm", "dispatch", "floor", "gateway",
            "get-over-grpc", "check-over-grpc", "dispatch-over-grpc",
        ],
    )  # fmt: skip
    parser.add_argument("--target", default="127.0.0.1:50051", help="the server the *-over-grpc kinds call")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent callers of the *-over-grpc kinds")
    parser.add_argument("--livekit", help="dispatch-over-grpc: origin of the LiveKit stand-in the server uses")
    parser.add_argument("--number", default=WARM_NUMBER, help="the dialed number get-over-grpc asks for")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--no-call-history", action="store_true", help="gateway: without CALLS_TARGET, so no call reporter"
    )
    parser.add_argument("--profile-filter", default=".", help='what --profile lists: a regex on "file:line(function)"')
    args = parser.parse_args(argv)
    if args.kind == "dispatch-over-grpc":
        if not args.livekit:
            parser.error("dispatch-over-grpc needs --livekit (the stand-in's origin)")
        print(json.dumps(event_loop.run(_drive_dispatch(args.target, args.livekit, args.calls, args.concurrency))))
        return
    if args.kind.endswith("-over-grpc"):
        print(json.dumps(event_loop.run(_drive(args.kind, args.target, args.number, args.calls, args.concurrency))))
        return
    gateway = functools.partial(_run_gateway, report_calls=not args.no_call_history)
    runs: dict[str, Callable[[str, int, str | None], Coroutine[Any, Any, dict[str, Any]]]] = {
        "persona": _run, "campaign": _run, "crm": _run_crm, "gateway": gateway,
    }  # fmt: skip
    run = runs.get(args.kind, _run_livekit)
    # The services' loop (uvloop), as DispatcherService and the floor run on.
    profile = args.profile_filter if args.profile else None
    print(json.dumps(event_loop.run(run(args.kind, args.calls, profile))))


if __name__ == "__main__":
    main()
