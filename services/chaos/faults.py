"""The faults of the matrix. Each says how it breaks the mesh, how calls are
delivered, and — per kind of number — where the default persona is a right answer.

Faults that take a part down bring it back while LiveKit is still redelivering
(1+2+4+8 s), so every call has a healthy path and none may be lost. Faults that
degrade a part for the whole run (slow/down/garbage CRM, slow LiveKit) must be
absorbed inside the gateway's budget or by a redelivery.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from services.common.livekit_names import DEFAULT_AGENT_NAME
from services.testing.mesh_options import MeshOptions

from .calls import NumberKind, numbers
from .options import CHAOS_MESH, CHAOS_MESH_WITH_REDIS

if TYPE_CHECKING:  # the mesh imports all three services; fault names (friday --help) load without them
    from services.testing.mesh import Mesh

Step = Callable[["Mesh"], Awaitable[None]]


class DeliveryMode(enum.Enum):
    ONCE = "once"
    TWICE = "twice"  # two webhook URLs / a retry after a lost reply: the same bytes twice, concurrently
    AGENT_FIRST = "agent_first"  # our agent's own participant_joined reaches us before the SIP join


# Where no persona but the default can exist: the CRM has none.
ONLY_UNKNOWN = frozenset({NumberKind.UNKNOWN})
# The CRM cannot answer in time, so a number PersonaService never saw has no persona to give;
# a number it saw before must still get its (stale) copy.
NO_FRESH = frozenset({NumberKind.COLD, NumberKind.UNKNOWN})
ANY = frozenset(NumberKind)

# DispatcherService's ERROR line when no worker took a job (the caller would ring out).
NO_WORKER_ERROR = "no agent worker took the job"

# Bodies a broken CRM answers with HTTP 200.
GARBAGE_BODIES: tuple[bytes, ...] = (
    b"<html><body>502 Bad Gateway</body></html>",
    b'{"data": 42}',
    b"[1, 2, 3]",
    b'{"personality": {"nested": true}}',
    b'{"persona_name": "a name and nothing else"}',
    b"\xff\xfe\x00garbage",
    b"",
    b'{"personality": "unterminated',
)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    default_allowed_for: frozenset[NumberKind] = ONLY_UNKNOWN
    mesh: MeshOptions = CHAOS_MESH
    delivery: DeliveryMode = DeliveryMode.ONCE
    begin: Step | None = None  # applied before the first call
    during: Step | None = None  # runs alongside the calls (a window of failure, then recovery)
    # After the last delivery ends: time for requests still in flight (a create that
    # outlived its client's timeout) to land, so a late double dispatch is counted.
    settle_seconds: float = 0.3
    # An ERROR line this fault is expected to cause (what an operator must be told), if any.
    expected_error: str | None = None


async def _crm_slow(mesh: Mesh) -> None:
    mesh.crm.set_latency(2.0)


async def _crm_down(mesh: Mesh) -> None:
    await mesh.stop_crm()


async def _crm_garbage(mesh: Mesh) -> None:
    for i, number in enumerate(numbers()):
        mesh.crm.set_response(number.national, 200, GARBAGE_BODIES[i % len(GARBAGE_BODIES)])


async def _crm_flapping(mesh: Mesh) -> None:
    mesh.crm.fail_share(0.5)


async def _livekit_503_bursts(mesh: Mesh) -> None:
    # A burst of 503s every half second while calls arrive, then LiveKit recovers.
    for _ in range(8):
        mesh.livekit.fail_next(15, status=503)
        await asyncio.sleep(0.5)


async def _livekit_slow(mesh: Mesh) -> None:
    mesh.livekit.set_latency(2.0)


async def _persona_down(mesh: Mesh) -> None:
    await mesh.stop_persona()


async def _persona_back(mesh: Mesh) -> None:
    await asyncio.sleep(0.5)
    await mesh.start_persona()


async def _dispatcher_restart(mesh: Mesh) -> None:
    # Mid-run, a crash-like stop (in-flight RPCs cancelled) and a new process on the
    # same port half a second later; its in-memory claims start empty.
    await asyncio.sleep(0.8)
    await mesh.stop_dispatcher(grace=0)
    await asyncio.sleep(0.5)
    await mesh.start_dispatcher()


async def _worker_arrives(mesh: Mesh) -> None:
    # Deployed before its agent: for the first 1.5 s no worker is registered, so those
    # calls' dispatches get no job; then the worker comes up and redeliveries find it.
    await asyncio.sleep(1.5)
    mesh.livekit.workers.register(DEFAULT_AGENT_NAME)


async def _worker_flapping(mesh: Mesh) -> None:
    # The agent worker crash-loops: gone for 0.3 s of every 0.8 s, for 3 s. A dispatch
    # made while it is gone is never offered again; its job never comes.
    for _ in range(4):
        await asyncio.sleep(0.5)
        mesh.livekit.workers.set_absent(DEFAULT_AGENT_NAME)
        await asyncio.sleep(0.3)
        mesh.livekit.workers.register(DEFAULT_AGENT_NAME)


async def _redis_outage(mesh: Mesh) -> None:
    assert mesh.redis is not None
    await asyncio.sleep(0.5)
    await mesh.redis.kill()
    await asyncio.sleep(2.5)
    await mesh.redis.restart()


# Creates LiveKit holds while the dispatcher process is killed.
CRASH_HELD_CREATES = 5


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    """Polls `condition`; False when it did not come true within `timeout` (a bound for a
    run gone wrong, which the fault's evidence then reports, not a timing assumption)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():
        if loop.time() > give_up:
            return False
        await asyncio.sleep(0.02)
    return True


async def _dispatcher_crash_mid_create(mesh: Mesh) -> None:
    # LiveKit is slow to answer the next creates; the dispatcher process is SIGKILLed
    # while they are in flight and a new one started on the same port (empty in-process
    # claims). The held creates land only once the new process has dispatched those calls
    # again (their redeliveries found nothing): the late, second dispatch of each call.
    # Late in the 3 s arrival window: the new process's start-up (seconds of CPU on a
    # small machine) then overlaps few first deliveries and their persona lookups.
    await asyncio.sleep(2.2)
    mesh.livekit.hold_next(CRASH_HELD_CREATES, method="CreateDispatch")
    await _until(lambda: mesh.livekit.held == CRASH_HELD_CREATES, timeout=10)
    await mesh.kill_dispatcher()
    await mesh.start_dispatcher()
    rooms = list(mesh.livekit.held_rooms)
    # LiveKit's redeliveries end 15 s after the first attempt.
    await _until(lambda: all(mesh.livekit.dispatches(room) for room in rooms), timeout=20)
    mesh.livekit.release_held()
    await _until(lambda: mesh.livekit.held == 0, timeout=10)
    # The new process re-reads those rooms while a predecessor's create may still land, at
    # most 2 s apart: until the doubles are healed (what is left is counted either way).
    await _until(lambda: all(len(mesh.livekit.dispatches(room)) <= 1 for room in rooms), timeout=20)


async def _redis_gone(mesh: Mesh) -> None:
    assert mesh.redis is not None
    await mesh.redis.kill()


FAULTS: tuple[Fault, ...] = (
    Fault("none", "no fault: the baseline"),
    Fault("crm_slow", "CRM answers every request after 2 s", NO_FRESH, begin=_crm_slow),
    Fault("crm_down", "CRM stopped (connection refused) for the whole run", NO_FRESH, begin=_crm_down),
    Fault("crm_garbage", "CRM answers 200 with HTML, wrong JSON shapes, bad UTF-8", NO_FRESH, begin=_crm_garbage),
    Fault(
        "crm_flapping",
        "half of all CRM requests fail with 500 (a cold number defaults only if all its attempts fail)",
        NO_FRESH,
        begin=_crm_flapping,
    ),
    Fault("livekit_503_bursts", "LiveKit answers bursts of 15 requests with 503", during=_livekit_503_bursts),
    Fault("livekit_slow", "every LiveKit Twirp call takes 2 s", begin=_livekit_slow, settle_seconds=2.5),
    Fault(
        "persona_down",
        "PersonaService down for the first 0.5 s, then a fresh process (empty cache)",
        ANY,
        begin=_persona_down,
        during=_persona_back,
    ),
    Fault("dispatcher_restart", "DispatcherService killed 0.8 s in, back 0.5 s later", during=_dispatcher_restart),
    Fault(
        "redis_down",
        "shared Redis (claims, persona cache, dedupe) SIGKILLed 0.5 s in, back empty 2.5 s later",
        mesh=CHAOS_MESH_WITH_REDIS,
        during=_redis_outage,
    ),
    Fault(
        "redis_down_for_good",
        "shared Redis (claims, persona cache, dedupe) SIGKILLed before the first call, never back",
        mesh=CHAOS_MESH_WITH_REDIS,
        begin=_redis_gone,
    ),
    Fault(
        "dispatcher_crash_mid_create",
        f"DispatcherService process SIGKILLed with {CRASH_HELD_CREATES} creates in flight at a slow LiveKit, "
        "restarted; the creates land after the new process dispatched those calls again",
        # Starting the new process takes seconds of CPU on a 2-core machine, alongside the
        # mesh: a cold number's first CRM fetch may then miss the gateway's persona timeout
        # and rightly get the default (as under crm_slow). Warm numbers keep their copy.
        NO_FRESH,
        mesh=replace(CHAOS_MESH, dispatcher_process=True),
        during=_dispatcher_crash_mid_create,
    ),
    Fault(
        "no_worker",
        "no agent worker registered for the first 1.5 s, then one comes up",
        mesh=replace(CHAOS_MESH, livekit_worker=None),
        during=_worker_arrives,
        expected_error=NO_WORKER_ERROR,
    ),
    Fault(
        "worker_flapping",
        "the agent worker is gone 0.3 s of every 0.8 s for 3 s",
        during=_worker_flapping,
        expected_error=NO_WORKER_ERROR,
    ),
    Fault("duplicate_delivery", "every webhook delivered twice, concurrently", delivery=DeliveryMode.TWICE),
    Fault("agent_join_first", "our agent's own join arrives before the SIP join", delivery=DeliveryMode.AGENT_FIRST),
)

FAULTS_BY_NAME = {fault.name: fault for fault in FAULTS}
