"""`friday calls`: serve CallHistoryService, or read a running one (`list`, `show
ROOM_OR_CALL_ID`, `stats`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from services.cli.client_commands import add_client_flags, connection_help, with_client
from services.cli.serving import add_grpc_serve_command, serve, server_port_overrides
from services.common import ports

if TYPE_CHECKING:  # the CLI imports service code lazily, so `friday --help` stays fast
    from google.protobuf.timestamp_pb2 import Timestamp

    from friday.calls.v1.call_pb2 import Call, CallEvent
    from services.calls.client import CallsClient

PREFIX, DEFAULT_TARGET = "CALLS", ports.CALLS.local_target
_SERVE_SETTINGS = (
    "CALLS_DATABASE_URL (postgresql://… or sqlite:///…; default an SQLite file under the user's data directory; "
    ":memory: keeps nothing), CALLS_DATABASE_SCHEMA, CALLS_RETENTION_DAYS (90, 0 = keep), "
    "CALLS_STORE_CALLER_NUMBERS (masked | full), CALLS_NO_AGENT_SECONDS (20), CALLS_SWEEP_INTERVAL_SECONDS (5), "
    "CALLS_SETTLE_SECONDS (60: a decided call is counted in friday_calls_total once unchanged this long), "
    "CALL_EVENTS_URL/CALL_EVENTS_SECRET (signed call events out), CALLS_TOKEN, METRICS_TOKEN, "
    "CALLS_TLS_CERT_FILE/_KEY_FILE/_CLIENT_CA_FILE, LOG_LEVEL"
)
_CLIENT_ENV = connection_help(PREFIX, DEFAULT_TARGET)
_OUTCOMES = ("answered", "no_agent", "abandoned")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calls", help="CallHistoryService (every call from ring to hang-up)")
    commands = parser.add_subparsers(dest="calls_command", metavar="COMMAND", required=True)

    serve_cmd = add_grpc_serve_command(
        commands,
        PREFIX,
        ports.CALLS,
        help="serve CallHistoryService over gRPC",
        settings=_SERVE_SETTINGS,
        handler=_serve,
    )
    serve_cmd.add_argument("--database-url", help="override CALLS_DATABASE_URL")
    serve_cmd.add_argument("--memory", action="store_true", help="keep the history in memory only (lost on exit)")

    listing = commands.add_parser("list", help="one line per call, newest first", description=_CLIENT_ENV)
    listing.add_argument("--since", type=float, help="only calls of the last N hours")
    listing.add_argument("--to", dest="dialed_number", default="", help="only calls to this dialed number")
    listing.add_argument("--persona", default="", help="only calls with this persona id")
    listing.add_argument("--outcome", choices=_OUTCOMES, help="only calls with this outcome")
    listing.add_argument("--limit", type=int, default=50, help="calls to show (default 50)")
    _client_flags(listing)
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="the whole record of one call", description=_CLIENT_ENV)
    show.add_argument("call", metavar="ROOM_OR_CALL_ID")
    _client_flags(show)
    show.set_defaults(handler=_show)

    stats = commands.add_parser("stats", help="calls, answer rate and times, per bucket and persona")
    stats.add_argument("--hours", type=float, default=24.0, help="the last N hours (default 24)")
    stats.add_argument("--bucket", type=int, default=3600, help="bucket width in seconds (default 3600)")
    _client_flags(stats)
    stats.set_defaults(handler=_stats)


def _client_flags(parser: argparse.ArgumentParser) -> None:
    add_client_flags(parser, PREFIX, DEFAULT_TARGET)


def _serve(args: argparse.Namespace) -> int:
    import dataclasses

    from services.calls.config import MEMORY_DATABASE, CallsConfig
    from services.calls.server import build_server, server_config_from_env
    from services.grpc_runtime import ServerConfig

    database_url = MEMORY_DATABASE if args.memory else args.database_url

    def read() -> tuple[CallsConfig, ServerConfig]:
        config = CallsConfig.from_env()
        if database_url:
            config = dataclasses.replace(config, store=dataclasses.replace(config.store, database_url=database_url))
        return config, server_config_from_env()

    return serve("calls serve", args, read, build_server, server_port_overrides(args))


def _with_client(args: argparse.Namespace, action: Callable[[CallsClient], Awaitable[int]]) -> int:
    from services.calls.client import CallsClient

    return with_client(args, CallsClient, action, service="CallHistoryService")


def _time(ts: Timestamp) -> str:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _outcome(call: Call) -> str:
    from friday.calls.v1.call_pb2 import CallOutcome

    name = CallOutcome.Name(call.outcome).removeprefix("CALL_OUTCOME_").lower()
    return "ringing" if name == "unspecified" else name


def _seconds(value: float, present: bool) -> str:
    return f"{value:.2f}s" if present else "-"


def _list(args: argparse.Namespace) -> int:
    from friday.calls.v1 import call_history_service_pb2 as pb
    from friday.calls.v1.call_pb2 import CallOutcome

    request = pb.ListCallsRequest(
        dialed_number=args.dialed_number,
        persona_id=args.persona,
        page_size=min(max(args.limit, 1), 500),
        outcome=CallOutcome.Value(f"CALL_OUTCOME_{(args.outcome or 'unspecified').upper()}"),
    )
    if args.since is not None:
        request.start_time.FromDatetime(datetime.now(UTC) - timedelta(hours=args.since))

    async def action(client: CallsClient) -> int:
        calls = (await client.list_calls(request)).calls
        for c in calls:
            persona = c.dispatch.persona_id or "-"
            if c.dispatch.persona_version:
                persona += f"@{c.dispatch.persona_version}"
            print(
                f"{_time(c.started_at)}  {c.room}  {c.sip_call_id or '-'}  to {c.dialed_number or '(hidden)'}  "
                f"persona {persona}  {_outcome(c)}  answer {_seconds(c.answer_seconds, c.HasField('answered_at'))}  "
                f"duration {_seconds(c.duration_seconds, c.HasField('ended_at'))}"
            )
        if not calls:
            print("no calls recorded", file=sys.stderr)
        return 0

    return _with_client(args, action)


def _event_line(event: CallEvent) -> str:
    from friday.calls.v1.call_pb2 import CallEventKind

    kind = CallEventKind.Name(event.kind).removeprefix("CALL_EVENT_KIND_").lower()
    detail = ""
    if event.HasField("dispatch"):
        detail = f"dispatch {event.dispatch.dispatch_id} persona {event.dispatch.persona_id}"
    elif event.agent_identity:
        detail = f"agent {event.agent_identity}"
    elif event.end.disconnect_reason:
        detail = event.end.disconnect_reason
    return f"  {_time(event.occurred_at)}  {kind:<24} {event.event_id}  {detail}".rstrip()


def _show(args: argparse.Namespace) -> int:
    async def action(client: CallsClient) -> int:
        found = await client.get_call(args.call)
        c = found.call
        d = c.dispatch
        rows = [
            ("room", c.room),
            ("sip call id", c.sip_call_id),
            ("dialed number", c.dialed_number or "(hidden)"),
            ("caller number", c.caller_number or "(hidden)"),
            ("started", _time(c.started_at)),
            ("outcome", _outcome(c)),
            ("answer time", _seconds(c.answer_seconds, c.HasField("answered_at"))),
            ("duration", _seconds(c.duration_seconds, c.HasField("ended_at"))),
            ("ended by", c.end_reason or "-"),
            ("persona", f"{d.persona_id or '-'} (version {d.persona_version or '-'})"),
            ("persona source", d.persona_source or "-"),
            ("default reason", d.default_reason or "-"),
            ("dispatch", d.dispatch_id or "-"),
            ("job", d.job_id or "-"),
            ("agent", c.agent_identity or "-"),
        ]
        for label, value in rows:
            print(f"{label + ':':<16}{value}")
        print("events:")
        for event in found.events:
            print(_event_line(event))
        return 0

    return _with_client(args, action)


def _stats(args: argparse.Namespace) -> int:
    from friday.calls.v1 import call_history_service_pb2 as pb

    now = datetime.now(UTC)
    request = pb.GetCallStatsRequest(bucket_seconds=args.bucket)
    request.start_time.FromDatetime(now - timedelta(hours=args.hours))
    request.end_time.FromDatetime(now)

    def line(label: str, s: pb.CallStats) -> str:
        return (
            f"{label:<32} calls {s.calls:>5}  answered {s.answered:>5}  no_agent {s.no_agent:>4}  "
            f"abandoned {s.abandoned:>4}  default {s.default_share:6.1%}  "
            f"answer p50 {s.median_answer_seconds:6.2f}s p95 {s.p95_answer_seconds:6.2f}s  "
            f"duration p50 {s.median_duration_seconds:7.2f}s"
        )

    async def action(client: CallsClient) -> int:
        stats = await client.stats(request)
        print(line(f"total (last {args.hours:g} h)", stats.total))
        for bucket in stats.buckets:
            print(line(_time(bucket.bucket_start), bucket.stats))
        for persona in stats.personas:
            label = f"{persona.persona_id or '(no dispatch)'}@{persona.persona_version or '-'}"
            print(line(label, persona.stats))
        return 0

    return _with_client(args, action)
