"""CreateDispatch's limits, as livekit-server's defaults set them: metadata up to 512 KiB and
attributes (keys plus values) up to 64 KiB, counted in UTF-8 bytes; past that, Twirp
`invalid_argument` with LiveKit's message and nothing created."""

from __future__ import annotations

import pytest
from livekit import api
from livekit.protocol.agent_dispatch import CreateAgentDispatchRequest

from services.testing.livekit_api import LiveKitStandIn
from services.testing.livekit_services import MAX_ATTRIBUTES_BYTES, MAX_METADATA_BYTES

ROOM = "call-limits"


async def _create(lk: LiveKitStandIn, **fields: object) -> object:
    async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret, failover=False) as lkapi:
        return await lkapi.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(agent_name="friday-ai-agent", room=ROOM, **fields)  # type: ignore[arg-type]
        )


async def _refused(lk: LiveKitStandIn, **fields: object) -> api.TwirpError:
    with pytest.raises(api.TwirpError) as excinfo:
        await _create(lk, **fields)
    return excinfo.value


def test_the_limits_are_livekits_defaults() -> None:
    assert (MAX_METADATA_BYTES, MAX_ATTRIBUTES_BYTES) == (512 * 1024, 64 * 1024)


async def test_metadata_over_512_kib_is_invalid_argument(livekit: LiveKitStandIn) -> None:
    await _create(livekit, metadata="x" * MAX_METADATA_BYTES)  # exactly the limit passes
    # "é" is two bytes: half as many characters already reach the limit.
    refused = await _refused(livekit, metadata="é" * (MAX_METADATA_BYTES // 2) + "x")
    assert (refused.status, refused.code, refused.message) == (400, "invalid_argument", "metadata size exceeds limits")
    assert livekit.create_count() == 1 and len(livekit.dispatches(ROOM)) == 1


async def test_attributes_over_64_kib_are_invalid_argument(livekit: LiveKitStandIn) -> None:
    key = "lk.note"
    await _create(livekit, attributes={key: "v" * (MAX_ATTRIBUTES_BYTES - len(key))})
    refused = await _refused(livekit, attributes={key: "v" * (MAX_ATTRIBUTES_BYTES - len(key)), "k": ""})
    assert (refused.status, refused.code, refused.message) == (400, "invalid_argument", "attribute size exceeds limits")
    assert livekit.create_count() == 1


async def test_a_deployment_with_a_reserved_character_is_invalid_argument(livekit: LiveKitStandIn) -> None:
    refused = await _refused(livekit, deployment="blue_green")
    assert (refused.status, refused.code) == (400, "invalid_argument")
    assert "reserved character" in refused.message
    assert livekit.create_count() == 0 and not livekit.has_room(ROOM)  # refused before the room is made
