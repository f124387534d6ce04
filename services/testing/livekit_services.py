"""What livekit-server's Twirp services answer, over the rooms, workers and trunks the stand-in
holds (`livekit_api` serves them over HTTP and injects faults).

* CreateDispatch (livekit-server `pkg/service/agent_dispatch_service.go`): checks the grant,
  the deployment name, metadata <= 512 KiB and attributes (keys + values) <= 64 KiB
  (`invalid_argument` "metadata size exceeds limits" / "attribute size exceeds limits"),
  creates the room when `auto_create` is on (livekit's default), then adds a dispatch with a
  random `AD_` id: never deduplicated, each call adds an agent. It succeeds whether or not a
  worker is registered: a dispatch is not an agent (`agent_workers`, `livekit_rooms`).
* A request for a room the server does not hold — ListDispatch, DeleteDispatch, and
  CreateDispatch with `auto_create` off — goes unanswered over psrpc, which tries three times
  (3, 5 and 7 s): Twirp `deadline_exceeded` (408) "request timed out" after
  `missing_room_delay_seconds` (15 s, as livekit; tests shorten it, and the three attempts
  shrink in proportion), unless the room appears before one of the later attempts.
* DeleteDispatch of an unknown id in an existing room: `not_found` "dispatch ID not found".
* RoomService ListRooms (`roomList` grant; `names` filters) answers at once from the rooms
  held; CreateRoom and DeleteRoom need `roomCreate`; deleting an unknown room is `not_found`
  "requested room does not exist".
* SIP ListSIPInboundTrunk needs the `sip.admin` grant (`livekit_sip` filters);
  TransferSIPParticipant is `livekit_transfers`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message
from livekit.protocol.agent_dispatch import (
    AgentDispatch,
    CreateAgentDispatchRequest,
    DeleteAgentDispatchRequest,
    ListAgentDispatchRequest,
    ListAgentDispatchResponse,
)
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    DeleteRoomResponse,
    ListRoomsRequest,
    ListRoomsResponse,
)
from livekit.protocol.sip import (
    ListSIPInboundTrunkRequest,
    ListSIPInboundTrunkResponse,
    TransferSIPParticipantRequest,
)

from .livekit_ids import DISPATCH_PREFIX, guid
from .livekit_rooms import RoomRecord, Rooms
from .livekit_sip import InboundTrunks
from .livekit_transfers import SipTransfers
from .livekit_transfers import validate as validate_transfer
from .twirp import Grants, TwirpError, decode, ensure_admin, ensure_create, ensure_list, ensure_sip_admin

# livekit-server's limits (pkg/config LimitConfig defaults).
MAX_METADATA_BYTES = 512 * 1024
MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_ROOM_NAME_LENGTH = 256
MAX_DEPLOYMENT_LENGTH = 64
# psrpc's attempts for a request nobody answers (livekit's PSRPCConfig: 3 s, +2 s per retry, 3 attempts).
PSRPC_ATTEMPT_SECONDS = (3.0, 5.0, 7.0)
MISSING_ROOM_DELAY_SECONDS = sum(PSRPC_ATTEMPT_SECONDS)
DISPATCH_SERVICE = "livekit.AgentDispatchService"

# A handler's answer: the reply message and the room it concerned ("" for none), for the call log.
Handler = Callable[[bytes, str, Grants], Awaitable[tuple[Message, str]]]


class LiveKitServices:
    def __init__(
        self,
        rooms: Rooms,
        trunks: InboundTrunks,
        *,
        auto_create: bool = True,
        missing_room_delay_seconds: float = MISSING_ROOM_DELAY_SECONDS,
    ) -> None:
        self._rooms = rooms
        self._trunks = trunks
        self.auto_create = auto_create
        self.missing_room_delay_seconds = max(0.0, missing_room_delay_seconds)
        self.created = 0  # successful CreateDispatch calls
        self.transfers = SipTransfers()
        # Keyed by the path after /twirp/.
        self.methods: dict[str, Handler] = {
            f"{DISPATCH_SERVICE}/CreateDispatch": self._create_dispatch,
            f"{DISPATCH_SERVICE}/ListDispatch": self._list_dispatch,
            f"{DISPATCH_SERVICE}/DeleteDispatch": self._delete_dispatch,
            "livekit.RoomService/ListRooms": self._list_rooms,
            "livekit.RoomService/CreateRoom": self._create_room,
            "livekit.RoomService/DeleteRoom": self._delete_room,
            "livekit.SIP/ListSIPInboundTrunk": self._list_inbound_trunks,
            "livekit.SIP/TransferSIPParticipant": self._transfer_sip_participant,
        }

    async def _room_when_reachable(self, name: str) -> RoomRecord:
        """The room, or psrpc's `deadline_exceeded` once every attempt went unanswered."""
        scale = self.missing_room_delay_seconds / MISSING_ROOM_DELAY_SECONDS
        for attempt_seconds in PSRPC_ATTEMPT_SECONDS:
            record = self._rooms.get(name)
            if record is not None:
                return record
            await asyncio.sleep(attempt_seconds * scale)
        raise TwirpError("deadline_exceeded", "request timed out")

    async def _create_dispatch(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, CreateAgentDispatchRequest())
        ensure_admin(grants, req.room)
        if not req.room:
            raise TwirpError("invalid_argument", "no room name")
        _validate_deployment(req.deployment)
        if len(req.metadata.encode()) > MAX_METADATA_BYTES:
            raise TwirpError("invalid_argument", "metadata size exceeds limits")
        if sum(len(k.encode()) + len(v.encode()) for k, v in req.attributes.items()) > MAX_ATTRIBUTES_BYTES:
            raise TwirpError("invalid_argument", "attribute size exceeds limits")
        if self.auto_create:
            record = self._rooms.create(req.room)
        else:
            record = await self._room_when_reachable(req.room)
        dispatch = AgentDispatch(
            id=guid(DISPATCH_PREFIX),
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
            restart_policy=req.restart_policy,
            deployment=req.deployment,
        )
        dispatch.attributes.update(req.attributes)
        created = self._rooms.add_dispatch(record, dispatch)
        self.created += 1
        return created, req.room

    async def _list_dispatch(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, ListAgentDispatchRequest())
        ensure_admin(grants, req.room)
        record = await self._room_when_reachable(req.room)
        return ListAgentDispatchResponse(agent_dispatches=self._rooms.dispatches(record, req.dispatch_id)), req.room

    async def _delete_dispatch(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, DeleteAgentDispatchRequest())
        ensure_admin(grants, req.room)
        record = await self._room_when_reachable(req.room)
        deleted = self._rooms.delete_dispatch(record, req.dispatch_id)
        if deleted is None:
            raise TwirpError("not_found", "dispatch ID not found")
        return deleted, req.room

    async def _list_rooms(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, ListRoomsRequest())
        ensure_list(grants)
        return ListRoomsResponse(rooms=self._rooms.list_rooms(req.names)), ""

    async def _create_room(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, CreateRoomRequest())
        ensure_create(grants)
        if len(req.name) > MAX_ROOM_NAME_LENGTH:
            raise TwirpError("invalid_argument", "room name length exceeds limits")
        if len(req.metadata.encode()) > MAX_METADATA_BYTES:
            # twirp.InvalidArgumentError(argument, validationMsg), as RoomService words it.
            argument = "metadata size exceeds limits"
            raise TwirpError("invalid_argument", f"{argument} {MAX_METADATA_BYTES}", meta={"argument": argument})
        return self._rooms.create(req.name).snapshot(), req.name

    async def _delete_room(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, DeleteRoomRequest())
        ensure_create(grants)
        if not self._rooms.close(req.room):
            raise TwirpError("not_found", "requested room does not exist")
        return DeleteRoomResponse(), req.room

    async def _list_inbound_trunks(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, ListSIPInboundTrunkRequest())
        ensure_sip_admin(grants)
        return ListSIPInboundTrunkResponse(items=self._trunks.list(req)), ""

    async def _transfer_sip_participant(self, body: bytes, content_type: str, grants: Grants) -> tuple[Message, str]:
        req = decode(body, content_type, TransferSIPParticipantRequest())
        transfer_to = validate_transfer(req, grants)
        record = await self._room_when_reachable(req.room_name)
        return self.transfers.transfer(record, req, transfer_to), req.room_name


def _validate_deployment(deployment: str) -> None:
    """livekit/protocol agent.ValidateDeployment."""
    if len(deployment) > MAX_DEPLOYMENT_LENGTH:
        raise TwirpError("invalid_argument", f"deployment exceeds {MAX_DEPLOYMENT_LENGTH} bytes")
    for i, char in enumerate(deployment):
        if char == "_":
            raise TwirpError("invalid_argument", "deployment contains reserved character '_'")
        if char <= " " or char == "\x7f":
            raise TwirpError("invalid_argument", f"deployment contains whitespace or control byte at position {i}")
