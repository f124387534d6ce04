"""Caller-supplied text in the logs: a trace id or room name carrying newlines and ANSI
escapes, sent to a real DispatcherService and through a real gateway, never writes a
line of its own. What is checked is what the services write: the records rendered by
the handler every Friday process logs through (services.common.tracing.log_handler)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import grpc
import pytest

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.dispatcher.v1 import dispatcher_service_pb2 as dpb
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc as dgrpc
from friday.persona.v1.persona_pb2 import Persona
from services.common import tracing
from services.common.log_safety import TRACEBACK_INDENT
from services.testing.livekit_webhooks import sip_participant_joined
from services.testing.mesh import Mesh
from tests.webhook_gateway.conftest import DIALED

# A whole access-log line, as the attacker would like it to appear, after a newline.
FORGED_LINE = "1999-01-01 00:00:00,000 INFO friday.grpc.access grpc method=/x code=OK trace_id=- peer=ipv4:10.0.0.1"
HOSTILE_TRACE_ID = f"EV_forged\n{FORGED_LINE}\x1b[2J"
HOSTILE_ROOM = f"call-forged\n{FORGED_LINE}\x1b[31m"
# Every line a record renders to starts like this (services.common.tracing.LOG_FORMAT).
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ trace=")


@pytest.fixture
def service_log(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    caplog.set_level(logging.INFO)
    out = io.StringIO()
    handler = tracing.log_handler(out)
    logging.getLogger().addHandler(handler)
    try:
        yield out
    finally:
        logging.getLogger().removeHandler(handler)


def _assert_one_line_per_record(text: str, caplog: pytest.LogCaptureFixture) -> None:
    lines = text.splitlines()
    assert lines, "nothing was logged"
    # A traceback's lines are indented under their record; every other line starts a record.
    assert [line for line in lines if not (RECORD_START.match(line) or line.startswith(TRACEBACK_INDENT))] == []
    assert not any(line.startswith("1999-01-01") for line in lines)
    assert "\x1b" not in text
    # The same records as the log capture holds them, rendered: one line each.
    assert [r.getMessage() for r in caplog.records if "\n" in r.getMessage() or "\x1b" in r.getMessage()] == []


async def test_a_hostile_trace_id_and_room_sent_to_dispatcher_service_stay_on_one_line(
    mesh: Mesh, service_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    mesh.livekit.create_room("call-log-ok")  # a caller's room, as LiveKit holds it
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.dispatcher.port}") as channel:
        dispatcher = dgrpc.DispatcherServiceStub(channel)
        for room in ("call-log-ok", HOSTILE_ROOM):
            metadata = AgentJobMetadata(
                schema_version=1, persona=Persona(personality="hello"), call=CallFacts(), trace_id=HOSTILE_TRACE_ID
            )
            request = dpb.DispatchAgentRequest(room=room, agent_name="friday-ai-agent", metadata=metadata)
            try:
                await dispatcher.DispatchAgent(request, timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and room == HOSTILE_ROOM

    text = service_log.getvalue()
    _assert_one_line_per_record(text, caplog)
    assert "trace=EV_forged\\n1999-01-01 00:00:00,000 INFO" in text  # the trace id, escaped
    assert "\\x1b[2J" in text


async def test_a_hostile_event_id_and_room_through_the_gateway_stay_on_one_line(
    mesh: Mesh, service_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    for n, room in enumerate(("call-log-gw", HOSTILE_ROOM)):
        event = sip_participant_joined(room=room, dialed_number=DIALED, event_id=f"{HOSTILE_TRACE_ID}{n}")
        response = await mesh.deliver(event)
        assert response.status_code in (200, 422), response.text

    text = service_log.getvalue()
    _assert_one_line_per_record(text, caplog)
    assert "trace=EV_forged\\n1999-01-01" in text  # gateway and services log the same escaped id
    assert "room call-forged\\n1999-01-01" in text  # the refused room, escaped
    assert "\\x1b[31m" in text
