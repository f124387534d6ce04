"""CallHistoryService's own work per call event, in process and without gRPC: the
RecordCallEvent servicer fed the events the gateway reports, for profiles and
instruction counts that do not depend on what else the machine runs.

    python -m bench.percall_calls --calls 2000                    # CPU µs per event
    python -m bench.percall_calls --calls 2000 --open 5000        # with 5,000 calls in progress
    python -m bench.percall_calls --calls 2000 --profile          # cProfile, top 40
    valgrind --tool=callgrind python -m bench.percall_calls --calls 2000 --baseline
    valgrind --tool=callgrind python -m bench.percall_calls --calls 2000
        # (instructions of the second − of the first) / events = instructions per event

A webhook of the bench (`--flow join`) reports two events: the caller's SIP join and the
gateway's dispatch result. `--flow lifecycle` adds the rest of a call (the agent's join,
the caller's leave, room_finished): five events per call. Events are built before the
clock starts, from LiveKit-shaped webhooks through the gateway's own conversion
(call_events), and go through the request's parse and the answer's serialisation as
grpc.aio would do them. `--baseline` does everything (the database, the open calls, the
events, the warm-up) but record the measured events.

`--reporter` measures the gateway's side instead: its CallReporter (queue, senders, retry
set-up) delivering the same events to a sink that acknowledges each at once, no gRPC.

`--open N` puts N calls in progress first (answered, not ended: what a busy system holds),
written in bulk. `--outbox` writes signed call events as with CALL_EVENTS_URL set (nothing
is delivered). `--database postgresql` uses the machine's PostgreSQL (a schema of its own,
dropped afterwards); the default is a temporary SQLite file. On PostgreSQL the statements
run in the server's backend processes, which neither this process's CPU time nor callgrind
sees: `server_cpu_us_per_event` is those backends' CPU over the measured events (from
/proc/<pid>/schedstat, so the server must run on this machine)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import insert, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1.call_pb2 import CallEvent, CallEventKind
from services.calls.config import CallsConfig, StoreConfig, driver_url
from services.calls.history import CallHistory
from services.calls.metrics import CallsMetrics
from services.calls.outbox import CallEventsConfig
from services.calls.records import OUTCOME_LABELS, fold, millis
from services.calls.schema import call_events, calls, calls_open_count
from services.calls.servicer import CallHistoryServicer
from services.calls.store import SqlCallStore
from services.common import event_loop
from services.testing import livekit_webhooks as webhooks
from services.webhook_gateway import call_events as gateway_events
from services.webhook_gateway.call_flow import Dispatched
from services.webhook_gateway.call_reporter import CallReporter, CallReporterMetrics, CallReportingConfig, Refusal
from services.webhook_gateway.events import SipCall, classify

POSTGRES_URL = "postgresql://root@127.0.0.1:5432/test"
AGENT_NAME = "friday-ai-agent"
DIALED_NUMBER = "+918655701159"
WARMUP_CALLS = 50
OPEN_BATCH = 1000


def _dispatched(room: str) -> Dispatched:
    return Dispatched(
        dispatch_id=f"AD_{room[-12:]}",
        already_existed=False,
        persona_id="xeny-reception",
        persona_name="Xeny reception",
        persona_source="PERSONA_SOURCE_CACHE",
        default_reason="",
        persona_version="sha256:9f2c4e1b7a6d5c3e8f0a1b2c3d4e5f60",
        job_id=f"AJ_{room[-12:]}",
    )


def _call_events(room: str, flow: str, joined_s: int) -> list[CallEvent]:
    """The events the gateway reports for one call, in the order it sends them."""
    joined = webhooks.sip_participant_joined(room=room, dialed_number=DIALED_NUMBER, created_at=joined_s)
    sip_call = classify(joined)
    assert isinstance(sip_call, SipCall)
    reported = [
        gateway_events.from_webhook(joined, agent_name=AGENT_NAME),
        gateway_events.from_dispatch(sip_call, _dispatched(room)),
    ]
    if flow == "lifecycle":
        reported += [
            gateway_events.from_webhook(
                webhooks.agent_participant_joined(room=room, joined_at_ms=joined_s * 1000 + 1400),
                agent_name=AGENT_NAME,
            ),
            gateway_events.from_webhook(
                webhooks.sip_participant_left(joined, created_at=joined_s + 62), agent_name=AGENT_NAME
            ),
            gateway_events.from_webhook(webhooks.room_finished(room=room, created_at=joined_s + 63), agent_name=""),
        ]
    events = [event for event in reported if event is not None]
    assert len(events) == len(reported), "the gateway dropped one of the bench's events"
    return events


def _requests(prefix: str, calls: int, flow: str) -> list[bytes]:
    now_s = int(time.time())
    return [
        pb.RecordCallEventRequest(event=event).SerializeToString()
        for n in range(calls)
        for event in _call_events(f"{prefix}-{n:08d}", flow, now_s)
    ]


class _Context:
    """RecordCallEvent reads nothing of a grpc.aio ServicerContext on its success path."""


def _open_rows(count: int) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Calls in progress (joined, dispatched, answered, not ended), as rows: batches of
    (call_events rows, calls rows)."""
    now_ms = time.time_ns() // 1_000_000
    joined_s = now_ms // 1000 - 120
    for start in range(0, count, OPEN_BATCH):
        event_rows, call_rows = [], []
        for n in range(start, min(count, start + OPEN_BATCH)):
            room = f"open-{n:08d}"
            events = _call_events(room, "join", joined_s)
            events.append(
                CallEvent(
                    event_id=f"EV_{room}_agent",
                    kind=CallEventKind.CALL_EVENT_KIND_AGENT_JOINED,
                    room=room,
                    agent_identity=f"agent-{room}",
                )
            )
            events[-1].occurred_at.FromMilliseconds(joined_s * 1000 + 1400)
            call = fold(events, no_agent_seconds=20.0, now_ms=now_ms)
            event_rows += [
                {
                    "event_id": e.event_id,
                    "room": room,
                    "kind": CallEventKind.Name(e.kind),
                    "occurred_at_ms": millis(e.occurred_at),
                    "received_at_ms": now_ms,
                    "payload": e.SerializeToString(deterministic=True),
                }
                for e in events
            ]
            call_rows.append(
                {
                    "room": room,
                    "sip_call_id": call.sip_call_id,
                    "started_at_ms": millis(call.started_at),
                    "answered_at_ms": millis(call.answered_at),
                    "outcome": OUTCOME_LABELS[call.outcome],
                    "dialed_number": call.dialed_number,
                    "caller_number": call.caller_number,
                    "persona_id": call.dispatch.persona_id,
                    "persona_version": call.dispatch.persona_version,
                    "persona_source": call.dispatch.persona_source,
                    "dispatch_id": call.dispatch.dispatch_id,
                    "answer_seconds": call.answer_seconds,
                    "updated_at_ms": now_ms,
                    "record": call.SerializeToString(deterministic=True),
                }
            )
        yield event_rows, call_rows


def _backend_cpu_ns(pids: set[int]) -> int | None:
    """The CPU time of these PostgreSQL backends so far; None when one cannot be read."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return total


def _watch_backends(store: SqlCallStore) -> set[int]:
    """The server pids of the store's PostgreSQL connections, as they are opened."""
    pids: set[int] = set()

    def connected(dbapi_connection: Any, _record: Any) -> None:
        pids.add(int(dbapi_connection.driver_connection.get_server_pid()))

    sqlalchemy_event.listen(store.sync_engine, "connect", connected)
    return pids


async def _fill_open(store: SqlCallStore, count: int) -> None:
    for event_rows, call_rows in _open_rows(count):
        await store.run_in_transaction(_insert_open, event_rows, call_rows)


def _insert_open(connection: Connection, event_rows: list[dict[str, Any]], call_rows: list[dict[str, Any]]) -> None:
    connection.execute(insert(call_events), event_rows)
    connection.execute(insert(calls), call_rows)
    # Written past the store, so counted in as the store would (the gauge stays true).
    connection.execute(
        update(calls_open_count).where(calls_open_count.c.id == 1).values(n=calls_open_count.c.n + len(call_rows))
    )


@contextlib.asynccontextmanager
async def _database(kind: str) -> AsyncIterator[StoreConfig]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="percall-calls-") as directory:
            yield StoreConfig(database_url=f"sqlite:///{Path(directory) / 'calls.sqlite3'}")
        return
    schema = f"percall_calls_{secrets.token_hex(6)}"
    try:
        yield StoreConfig(database_url=POSTGRES_URL, database_schema=schema)
    finally:
        engine = create_async_engine(driver_url(POSTGRES_URL))
        try:
            async with engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    warmup = _requests("warm", WARMUP_CALLS, args.flow)
    measured = _requests("call", args.calls, args.flow)
    async with _database(args.database) as store_config:
        config = CallsConfig(
            store=store_config,
            # No sweep during the run: its cost depends on the run's length, not on the events.
            sweep_interval_seconds=1e9,
            events=CallEventsConfig(url="http://127.0.0.1:9/call-events" if args.outbox else None),
        )
        store = SqlCallStore(store_config, clock_ms=lambda: time.time_ns() // 1_000_000)
        backends = _watch_backends(store) if args.database == "postgresql" else set()
        history = CallHistory(store, config, CallsMetrics(CollectorRegistry()), call_events=args.outbox)
        await history.start()
        await _fill_open(store, args.open)
        servicer = CallHistoryServicer(history, config.max_page_size)
        context: Any = _Context()

        async def record(request: bytes) -> None:
            parsed = pb.RecordCallEventRequest.FromString(request)
            (await servicer.RecordCallEvent(parsed, context)).SerializeToString()

        try:
            for request in warmup:
                await record(request)
            if args.baseline:
                measured = []
            # Main-thread CPU only: the loop's work, without the SQLite thread's.
            profiler = cProfile.Profile(time.thread_time) if args.profile else None
            began, began_loop = time.process_time(), time.thread_time()
            began_server = _backend_cpu_ns(backends)
            if profiler is not None:
                profiler.enable()
            for request in measured:
                await record(request)
            if profiler is not None:
                profiler.disable()
            spent, spent_loop = time.process_time() - began, time.thread_time() - began_loop
            ended_server = _backend_cpu_ns(backends)
        finally:
            await history.stop()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile_filter, 40)
    per_call = len(measured) // args.calls if args.calls and measured else 0
    return {
        "database": args.database,
        "flow": args.flow,
        "open": args.open,
        "outbox": args.outbox,
        "events": len(measured),
        "cpu_us_per_event": round(spent / len(measured) * 1e6, 1) if measured else None,
        "loop_thread_cpu_us_per_event": round(spent_loop / len(measured) * 1e6, 1) if measured else None,
        "cpu_us_per_call": round(spent / args.calls * 1e6, 1) if measured else None,
        "server_cpu_us_per_event": (
            round((ended_server - began_server) / len(measured) / 1e3, 1)
            if measured and backends and began_server is not None and ended_server is not None
            else None
        ),
        "events_per_call": per_call,
    }


class _AcknowledgingSink:
    """CallHistoryService answering every event at once: what is left is the reporter's own work."""

    def __init__(self) -> None:
        self._seen = 0
        self._target = 0
        self._reached = asyncio.Event()

    def expect(self, count: int) -> asyncio.Event:
        """An event set once `count` more events have been recorded."""
        self._target = self._seen + count
        self._reached = asyncio.Event()
        if count == 0:
            self._reached.set()
        return self._reached

    async def record(self, events: Sequence[CallEvent], *, timeout: float) -> list[Refusal]:
        self._seen += len(events)
        if self._seen >= self._target:
            self._reached.set()
        return []


async def _run_reporter(args: argparse.Namespace) -> dict[str, Any]:
    events = [pb.RecordCallEventRequest.FromString(r).event for r in _requests("call", args.calls, args.flow)]
    warmup = [pb.RecordCallEventRequest.FromString(r).event for r in _requests("warm", WARMUP_CALLS, args.flow)]
    measured = [] if args.baseline else events
    sink = _AcknowledgingSink()
    config = CallReportingConfig(target="bench", queue_size=len(warmup) + len(events) + 1)
    reporter = CallReporter(sink, config, CallReporterMetrics(CollectorRegistry()))
    await reporter.start()
    for batch in (warmup, measured):
        done = sink.expect(len(batch))
        began = time.process_time()
        for event in batch:
            reporter.report(event)
            await asyncio.sleep(0)  # one at a time, as webhooks come
        await done.wait()
        spent = time.process_time() - began
    await reporter.close()
    return {
        "reporter": True,
        "flow": args.flow,
        "events": len(measured),
        "cpu_us_per_event": round(spent / len(measured) * 1e6, 1) if measured else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.percall_calls", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls whose events are recorded")
    parser.add_argument("--flow", choices=["join", "lifecycle"], default="join")
    parser.add_argument("--open", type=int, default=0, help="calls in progress before the run")
    parser.add_argument("--outbox", action="store_true", help="write signed call events (CALL_EVENTS_URL set)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--reporter", action="store_true", help="the gateway's CallReporter, not the service")
    parser.add_argument("--baseline", action="store_true", help="all but recording the measured events")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-filter", default=".", help='what --profile lists: a regex on "file:line(function)"')
    args = parser.parse_args(argv)
    # The services' loop (uvloop), as CallHistoryService runs on.
    print(json.dumps(event_loop.run(_run_reporter(args) if args.reporter else _run(args))))


if __name__ == "__main__":
    main()
