"""`friday dispatcher`: serve DispatcherService, or talk to a running one
(`list ROOM`, `cancel ROOM DISPATCH_ID`, `dispatch ROOM`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from services.cli.serving import add_log_level_flag, given, serve
from services.common.env import Environment

if TYPE_CHECKING:  # the CLI imports service code lazily, so `friday --help` stays fast
    from friday.dispatcher.v1.dispatcher_service_pb2 import Dispatch
    from services.dispatcher.client import DispatcherClient

_SERVE_ENV = (
    "Settings come from the environment: DISPATCHER_PORT (50052), DISPATCHER_METRICS_PORT (9102, 0 = off), "
    "LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET (livekit-server --dev defaults), DISPATCHER_TOKEN, "
    "DISPATCHER_TLS_CERT_FILE/_KEY_FILE/_CLIENT_CA_FILE, REDIS_URL, DISPATCHER_CLAIM_PREFIX, "
    "DISPATCHER_CLAIM_SETTLE_SECONDS, DISPATCHER_MAX_BUDGET_SECONDS, DISPATCHER_RETRY_*, LOG_LEVEL (see the README); "
    "flags override them."
)
_CLIENT_ENV = (
    "Connection settings come from the environment: DISPATCHER_TARGET (localhost:50052), DISPATCHER_TOKEN, "
    "DISPATCHER_TLS_CA_FILE/_CLIENT_CERT_FILE/_CLIENT_KEY_FILE/_SERVER_NAME; flags override them."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dispatcher", help="DispatcherService (the only holder of the LiveKit API key)")
    commands = parser.add_subparsers(dest="dispatcher_command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="serve DispatcherService over gRPC", description=_SERVE_ENV)
    serve.add_argument("--port", type=int, help="gRPC port (env DISPATCHER_PORT, default 50052)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port, 0 = off (env DISPATCHER_METRICS_PORT)")
    add_log_level_flag(serve)
    serve.set_defaults(handler=_serve)

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
    parser.add_argument("--target", help="host:port (env DISPATCHER_TARGET, default localhost:50052)")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds (default 5)")


def _serve(args: argparse.Namespace) -> int:
    from services.dispatcher.config import DispatcherConfig
    from services.dispatcher.server import build_server, server_config_from_env

    overrides = given(port=args.port)
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port or None  # 0 switches the endpoint off
    read = lambda: (DispatcherConfig.from_env(), server_config_from_env())  # noqa: E731
    return serve("dispatcher serve", args, read, build_server, overrides)


def _with_client(args: argparse.Namespace, action: Callable[[DispatcherClient], Awaitable[int]]) -> int:
    from services.cli.call_errors import describe
    from services.dispatcher.client import DEFAULT_TARGET, DispatcherCallError, DispatcherClient

    target = args.target or Environment().text("DISPATCHER_TARGET", DEFAULT_TARGET)

    async def run() -> int:
        async with DispatcherClient.from_env(target=target, default_timeout=args.timeout) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except DispatcherCallError as exc:
        failure = describe(
            exc.code,
            exc.message,
            exc.reason,
            None,
            service="DispatcherService",
            target=target,
            target_setting="--target / DISPATCHER_TARGET",
            timeout=args.timeout,
        )
        print(failure.as_text(), file=sys.stderr)
        return 1


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
