"""`friday dispatcher`: serve DispatcherService, or talk to a running one
(`list ROOM`, `cancel ROOM DISPATCH_ID`, `dispatch ROOM`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from services.cli.client_commands import add_client_flags, connection_help, with_client
from services.cli.serving import add_grpc_serve_command, serve, server_port_overrides
from services.common import ports
from services.common.env import Environment

if TYPE_CHECKING:  # the CLI imports service code lazily, so `friday --help` stays fast
    from friday.dispatcher.v1.dispatcher_service_pb2 import Dispatch
    from services.dispatcher.client import DispatcherClient

PREFIX, DEFAULT_TARGET = "DISPATCHER", ports.DISPATCHER.local_target
_SERVE_SETTINGS = (
    "LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET (livekit-server --dev defaults), DISPATCHER_TOKEN, METRICS_TOKEN, "
    "DISPATCHER_TLS_CERT_FILE/_KEY_FILE/_CLIENT_CA_FILE, REDIS_URL, DISPATCHER_CLAIM_PREFIX, "
    "DISPATCHER_CLAIM_SETTLE_SECONDS, DISPATCHER_MAX_BUDGET_SECONDS, DISPATCHER_RETRY_*, LOG_LEVEL (see the README)"
)
_CLIENT_ENV = connection_help(PREFIX, DEFAULT_TARGET)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dispatcher", help="DispatcherService (the only holder of the LiveKit API key)")
    commands = parser.add_subparsers(dest="dispatcher_command", metavar="COMMAND", required=True)

    add_grpc_serve_command(
        commands,
        PREFIX,
        ports.DISPATCHER,
        help="serve DispatcherService over gRPC",
        settings=_SERVE_SETTINGS,
        handler=_serve,
    )

    listing = commands.add_parser("list", help="list a room's agent dispatches", description=_CLIENT_ENV)
    listing.add_argument("room")
    _client_flags(listing)
    listing.set_defaults(handler=_list)

    cancel = commands.add_parser("cancel", help="delete one dispatch from a room", description=_CLIENT_ENV)
    cancel.add_argument("room")
    cancel.add_argument("dispatch_id")
    _client_flags(cancel)
    cancel.set_defaults(handler=_cancel)

    dispatch = commands.add_parser(
        "dispatch",
        help="dispatch an agent to a room with the default persona (manual testing)",
        description=_CLIENT_ENV,
    )
    dispatch.add_argument("room")
    dispatch.add_argument("--agent-name", help="agent name (env AGENT_TO_DISPATCH, default friday-ai-agent)")
    dispatch.add_argument("--sip-call-id", default="", help="SIP call id recorded in the job metadata")
    _client_flags(dispatch)
    dispatch.set_defaults(handler=_dispatch)


def _client_flags(parser: argparse.ArgumentParser) -> None:
    add_client_flags(parser, PREFIX, DEFAULT_TARGET)


def _serve(args: argparse.Namespace) -> int:
    from services.dispatcher.config import DispatcherConfig
    from services.dispatcher.server import build_server, server_config_from_env

    read = lambda: (DispatcherConfig.from_env(), server_config_from_env())  # noqa: E731
    return serve("dispatcher serve", args, read, build_server, server_port_overrides(args))


def _with_client(args: argparse.Namespace, action: Callable[[DispatcherClient], Awaitable[int]]) -> int:
    from services.dispatcher.client import DispatcherClient

    return with_client(args, DispatcherClient, action, service="DispatcherService")


def _print_dispatch(d: Dispatch) -> None:
    print(f"{d.dispatch_id}\tagent={d.agent_name}\troom={d.room}\tmetadata={len(d.metadata)}B")


def _list(args: argparse.Namespace) -> int:
    async def action(client: DispatcherClient) -> int:
        dispatches = await client.list_dispatches(args.room)
        for d in dispatches:
            _print_dispatch(d)
        if not dispatches:
            print(f"no dispatches in room {args.room!r}", file=sys.stderr)
        return 0

    return _with_client(args, action)


def _cancel(args: argparse.Namespace) -> int:
    async def action(client: DispatcherClient) -> int:
        _print_dispatch(await client.cancel_dispatch(args.room, args.dispatch_id))
        return 0

    return _with_client(args, action)


def _dispatch(args: argparse.Namespace) -> int:
    from friday.agent.v1.agent_job_metadata_pb2 import AgentJobMetadata
    from friday.persona.v1.persona_pb2 import PersonaSource
    from services.common.default_persona import default_persona
    from services.common.livekit_names import AGENT_NAME_ENV, DEFAULT_AGENT_NAME

    agent_name = args.agent_name or Environment().text(AGENT_NAME_ENV, DEFAULT_AGENT_NAME)
    metadata = AgentJobMetadata(persona=default_persona(), persona_source=PersonaSource.Value("PERSONA_SOURCE_DEFAULT"))
    metadata.call.room = args.room
    metadata.call.sip_call_id = args.sip_call_id

    async def action(client: DispatcherClient) -> int:
        response = await client.dispatch_agent(args.room, agent_name, metadata)
        _print_dispatch(response.dispatch)
        print("already existed" if response.already_existed else "created", file=sys.stderr)
        return 0

    return _with_client(args, action)
