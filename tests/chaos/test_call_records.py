"""A fault row checks every simulated call's record in the mesh's real CallHistoryService,
and fails when the service lost one, holds one too many, or holds a wrong one. Each test
runs a short row and, once its calls are over and recorded, makes the service's records
wrong the way a faulty recorder would: a call lost from its database, or events recorded
through its own gRPC API that the calls never had."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable

from friday.calls.v1 import call_history_service_pb2 as pb
from friday.calls.v1.call_pb2 import CallEvent, CallEventKind, DispatchFacts, EndFacts
from services.calls.client import CallsClient
from services.calls.records import millis, timestamp_of
from services.chaos.faults import FAULTS_BY_NAME
from services.chaos.records import ABANDONED
from services.chaos.report import HEADER, format_json, format_table
from services.chaos.runner import FaultResult, run_fault
from services.testing.mesh import Mesh

CALLS = 6
# Short: a row whose records stay wrong waits this long for them to come right.
WAIT_SECONDS = 2.0
VICTIM = "chaos-none-0002"


async def _row(before_records: Callable[[Mesh], Awaitable[None]] | None = None) -> FaultResult:
    return await run_fault(
        FAULTS_BY_NAME["none"],
        CALLS,
        arrival_seconds=0.5,
        before_records=before_records,
        records_wait_seconds=WAIT_SECONDS,
    )


async def _recorded_joins(mesh: Mesh) -> dict[str, CallEvent]:
    """Waits until every call's record shows its end (the gateway reports off the call
    path), then answers each call's recorded SIP join, by room."""
    assert mesh.calls_target is not None
    async with CallsClient(mesh.calls_target) as client:

        async def ended() -> list[str]:
            page = await client.list_calls(pb.ListCallsRequest(page_size=500))
            return [c.room for c in page.calls if c.HasField("ended_at") and c.outcome]

        loop = asyncio.get_running_loop()
        give_up = loop.time() + 60  # a bound for a stuck test, not a timing assumption
        while len(await ended()) < CALLS:
            assert loop.time() < give_up, "the calls were never all recorded"
            await asyncio.sleep(0.05)
        joins = {}
        for room in await ended():
            events = (await client.get_call(room)).events
            (joins[room],) = [e for e in events if e.kind == CallEventKind.CALL_EVENT_KIND_SIP_JOINED]
        return joins


async def _record(mesh: Mesh, event: CallEvent) -> None:
    assert mesh.calls_target is not None
    async with CallsClient(mesh.calls_target) as client:
        await client.record(event)


def _delete_call(path: str, room: str) -> None:
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("DELETE FROM call_events WHERE room = ?", (room,))
        db.execute("DELETE FROM calls WHERE room = ?", (room,))


async def test_a_clean_row_has_one_answered_record_per_call_and_reports_it() -> None:
    result = await _row()
    assert result.records_checked
    assert (result.records, result.records_missing, result.records_extra, result.records_wrong) == (CALLS, 0, 0, 0)
    assert result.outcome_count("answered") == CALLS
    assert all(o.record is not None and o.record.expected_outcome == "answered" for o in result.outcomes)
    assert not result.failed and result.problems == []
    table = format_table([result]).splitlines()
    header, cells = ([c.strip() for c in line.split("|")[1:-1]] for line in (table[0], table[2]))
    assert header[-5:] == ["records", "answered", "missing", "extra", "wrong record"]
    assert cells[-5:] == [str(CALLS), str(CALLS), "0", "0", "0"]
    (row,) = json.loads(format_json([result]))
    assert list(row) == [
        "fault",
        "calls",
        "zero_dispatch",
        "multi_dispatch",
        "healed_doubles",
        "wrong_persona",
        "default_persona",
        "redelivered",
        "p99_to_dispatch_seconds",
        "records",
        "records_answered",
        "records_no_agent",
        "records_abandoned",
        "records_missing",
        "records_extra",
        "records_wrong_outcome",
        "records_wrong_persona",
        "failed",
        "seconds",
    ]
    assert (row["records"], row["records_answered"], row["records_missing"], row["failed"]) == (CALLS, CALLS, 0, False)
    assert len(HEADER) == len(header)


async def test_a_call_the_service_lost_fails_the_row() -> None:
    async def lose_one(mesh: Mesh) -> None:
        await _recorded_joins(mesh)
        assert mesh.calls_database_path is not None
        await asyncio.to_thread(_delete_call, mesh.calls_database_path, VICTIM)

    result = await _row(lose_one)
    assert (result.records, result.records_missing, result.records_extra) == (CALLS - 1, 1, 0)
    assert result.failed
    (lost,) = [p for p in result.problems if p.startswith(f"{VICTIM}: call record: 0 records [")]
    # What the run saw of the call comes with it: its deliveries and the agent LiveKit holds.
    assert "delivery EV_" in lost and "[200] last dispatched" in lost and "LiveKit holds AD_" in lost
    (row,) = json.loads(format_json([result]))
    assert (row["records_missing"], row["failed"]) == (1, True)


async def test_a_second_record_of_a_call_fails_the_row() -> None:
    async def record_twice(mesh: Mesh) -> None:
        join = (await _recorded_joins(mesh))[VICTIM]
        # The same SIP call recorded under another room, as a recorder keyed wrongly would.
        again = CallEvent()
        again.CopyFrom(join)
        again.event_id, again.room = "EV_again", "chaos-none-elsewhere"
        await _record(mesh, again)

    result = await _row(record_twice)
    assert (result.records, result.records_missing, result.records_extra) == (CALLS, 0, 1)
    assert result.failed
    assert any(p.startswith("chaos-none-elsewhere: a second record of " + VICTIM) for p in result.problems)


async def test_a_record_with_the_wrong_outcome_or_persona_fails_the_row() -> None:
    async def falsify(mesh: Mesh) -> None:
        joins = await _recorded_joins(mesh)
        start_ms = millis(joins[VICTIM].occurred_at)
        # An end before the agent's join: the record says the caller gave up first.
        early_end = CallEvent(
            event_id="EV_early_end",
            kind=CallEventKind.CALL_EVENT_KIND_SIP_CONNECTION_ABORTED,
            room=VICTIM,
            occurred_at=timestamp_of(start_ms - 5000),
            end=EndFacts(disconnect_reason="CONNECTION_TIMEOUT"),
        )
        await _record(mesh, early_end)
        # A dispatch, earlier than the real one, of a persona the agent never had.
        other = "chaos-none-0004"
        await _record(
            mesh,
            CallEvent(
                event_id="dispatch:EV_other",
                kind=CallEventKind.CALL_EVENT_KIND_DISPATCHED,
                room=other,
                occurred_at=timestamp_of(millis(joins[other].occurred_at) - 1000),
                dispatch=DispatchFacts(persona_id="crm-somebody-else", dispatch_id="AD_other"),
            ),
        )

    result = await _row(falsify)
    assert (result.records, result.records_missing, result.records_extra) == (CALLS, 0, 0)
    assert (result.records_wrong_outcome, result.records_wrong_persona, result.records_wrong) == (1, 1, 2)
    assert result.failed
    assert result.outcome_count(ABANDONED) == 1
    assert any(p.startswith(f"{VICTIM}: call record: outcome abandoned, expected answered") for p in result.problems)
    assert any("chaos-none-0004: call record: persona 'crm-somebody-else'" in p for p in result.problems)
