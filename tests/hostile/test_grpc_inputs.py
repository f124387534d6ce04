"""Malformed and oversize fields sent straight to PersonaService and DispatcherService
get INVALID_ARGUMENT, never INTERNAL/UNKNOWN, and never reach the CRM or LiveKit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings

from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata, CallFacts
from friday.dispatcher.v1 import dispatcher_service_pb2 as dpb
from friday.dispatcher.v1 import dispatcher_service_pb2_grpc as dgrpc
from friday.persona.v1 import persona_service_pb2 as ppb
from friday.persona.v1 import persona_service_pb2_grpc as pgrpc
from friday.persona.v1.persona_pb2 import Persona
from services.testing.mesh import Mesh
from tests.hostile.conftest import error_records
from tests.hostile.strategies import phone_numbers

BAD_NUMBERS = [
    "",
    "   ",
    "9" * 10_000,
    "+91865570\x001159",
    "+91\n8655701159",
    "+91\x1b[31m8655701159",
    "\u202e9511075568+",
    "+91 8655 701159 ext. 12; DROP TABLE personas",
    "../../admin",
    "%2B918655701159",
    "+９１８６５５７０１１５９",  # fullwidth digits
    "+٩١٨٦٥٥٧٠١١٥٩",  # Arabic-Indic digits
    "1-800-FLOWERS",
    "+0",
]

BAD_ROOMS = ["", "r" * 10_000, "room\x00name", "room\nname", " padded ", "\x7f", "call\u200b\u0000"]
BAD_AGENT_NAMES = ["", "a" * 10_000, "friday ai agent", "agent\x00", "agent\t"]


@pytest.fixture
async def stubs(mesh: Mesh) -> AsyncIterator[tuple[pgrpc.PersonaServiceStub, dgrpc.DispatcherServiceStub]]:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{mesh.persona.port}") as persona_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{mesh.dispatcher.port}") as dispatcher_channel,
    ):
        yield pgrpc.PersonaServiceStub(persona_channel), dgrpc.DispatcherServiceStub(dispatcher_channel)


async def _code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("number", BAD_NUMBERS, ids=range(len(BAD_NUMBERS)))
@pytest.mark.parametrize("allow_default", [False, True])
async def test_persona_rejects_malformed_numbers(mesh: Mesh, stubs, number: str, allow_default: bool) -> None:
    persona, _ = stubs
    request = ppb.GetPersonaRequest(dialed_number=number, allow_default=allow_default)
    assert await _code_of(persona.GetPersona(request, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    invalidate = ppb.InvalidatePersonaRequest(dialed_number=number)
    assert await _code_of(persona.InvalidatePersona(invalidate, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    assert mesh.crm.total_requests == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=phone_numbers)
async def test_persona_answers_any_text_with_ok_or_invalid_argument(
    mesh: Mesh, stubs, caplog: pytest.LogCaptureFixture, number: str
) -> None:
    caplog.set_level(logging.WARNING)
    persona, _ = stubs
    code = await _code_of(
        persona.GetPersona(ppb.GetPersonaRequest(dialed_number=number, allow_default=True), timeout=5)
    )
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (number, code)
    assert error_records(caplog) == []


def _metadata(room: str, personality: str = "hello") -> AgentJobMetadata:
    return AgentJobMetadata(schema_version=1, persona=Persona(personality=personality), call=CallFacts(room=room))


@pytest.mark.parametrize("room", BAD_ROOMS, ids=range(len(BAD_ROOMS)))
async def test_dispatcher_rejects_malformed_rooms(mesh: Mesh, stubs, room: str) -> None:
    _, dispatcher = stubs
    dispatch = dpb.DispatchAgentRequest(room=room, agent_name="friday-ai-agent", metadata=_metadata(room))
    assert await _code_of(dispatcher.DispatchAgent(dispatch, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    listing = dpb.ListDispatchesRequest(room=room)
    assert await _code_of(dispatcher.ListDispatches(listing, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    cancel = dpb.CancelDispatchRequest(room=room, dispatch_id="AD_abc")
    assert await _code_of(dispatcher.CancelDispatch(cancel, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    assert mesh.livekit.calls == []


@pytest.mark.parametrize("agent_name", BAD_AGENT_NAMES, ids=range(len(BAD_AGENT_NAMES)))
async def test_dispatcher_rejects_malformed_agent_names(mesh: Mesh, stubs, agent_name: str) -> None:
    _, dispatcher = stubs
    request = dpb.DispatchAgentRequest(room="call-1", agent_name=agent_name, metadata=_metadata("call-1"))
    assert await _code_of(dispatcher.DispatchAgent(request, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    assert mesh.livekit.calls == []


async def test_dispatcher_rejects_bad_dispatch_ids_and_mismatched_or_oversize_metadata(mesh: Mesh, stubs) -> None:
    _, dispatcher = stubs
    for dispatch_id in ("", "AD_\x00", "x" * 10_000, " AD_abc"):
        cancel = dpb.CancelDispatchRequest(room="call-1", dispatch_id=dispatch_id)
        assert await _code_of(dispatcher.CancelDispatch(cancel, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    other_room = dpb.DispatchAgentRequest(room="call-1", agent_name="friday-ai-agent", metadata=_metadata("call-2"))
    assert await _code_of(dispatcher.DispatchAgent(other_room, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    oversize = dpb.DispatchAgentRequest(
        room="call-1", agent_name="friday-ai-agent", metadata=_metadata("call-1", "p" * (600 * 1024))
    )
    assert await _code_of(dispatcher.DispatchAgent(oversize, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    assert mesh.livekit.calls == []


def _string_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand so it can carry invalid UTF-8."""
    tag = (number << 3) | 2
    length = len(payload)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([tag]) + bytes(varint) + payload


_RAW_METHODS = [
    ("/friday.persona.v1.PersonaService/GetPersona", "persona"),
    ("/friday.dispatcher.v1.DispatcherService/ListDispatches", "dispatcher"),
]
_UNDECODABLE = (_string_field(1, b"+91\xff\xfe8655701159"), b"\xff\xff\xff\xff", _string_field(1, b"\x80" * 5000))


async def _raw_codes(mesh: Mesh, method: str, target: str) -> list[grpc.StatusCode]:
    port = mesh.persona.port if target == "persona" else mesh.dispatcher.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        return [await _code_of(raw(payload, timeout=5)) for payload in _UNDECODABLE]


@pytest.mark.parametrize(("method", "target"), _RAW_METHODS)
async def test_undecodable_requests_are_refused_and_the_server_keeps_serving(
    mesh: Mesh, method: str, target: str
) -> None:
    codes = await _raw_codes(mesh, method, target)
    assert grpc.StatusCode.OK not in codes
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.persona.port}") as channel:
        stub = pgrpc.PersonaServiceStub(channel)
        after = await _code_of(stub.GetPersona(ppb.GetPersonaRequest(dialed_number="+918655701159"), timeout=5))
    assert after == grpc.StatusCode.OK
    assert mesh.livekit.calls == []


@pytest.mark.parametrize(("method", "target"), _RAW_METHODS)
async def test_undecodable_requests_get_invalid_argument_without_an_error_log(
    mesh: Mesh, caplog: pytest.LogCaptureFixture, method: str, target: str
) -> None:
    codes = await _raw_codes(mesh, method, target)
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * len(_UNDECODABLE)
    assert error_records(caplog) == []
