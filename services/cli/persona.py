"""`friday persona serve | get NUMBER | invalidate NUMBER | notify NUMBER… | watch [NUMBER…] | check FILE`."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from services.cli.serving import add_grpc_serve_command, serve, server_port_overrides
from services.common import ports
from services.common.env import Environment

if TYPE_CHECKING:  # imported where used: grpc_runtime loads aiohttp (its metrics), which `friday --help` needs not
    from services.grpc_runtime import ClientTLSConfig

TARGET_SETTING = "--target / PERSONA_TARGET"


def register(subparsers: Any) -> None:
    env = Environment()
    parser = subparsers.add_parser("persona", help="PersonaService: serve it, or look a number up")
    commands = parser.add_subparsers(dest="persona_command", metavar="ACTION", required=True)

    add_grpc_serve_command(
        commands,
        "PERSONA",
        ports.PERSONA,
        help=f"run PersonaService (port PERSONA_PORT, default {ports.PERSONA.grpc})",
        settings="PERSONA_API_BASE (the CRM; unset = PERSONA_FILE), PERSONA_CRM_*, PERSONA_CACHE_TTL and the other "
        "cache settings, REDIS_URL, PERSONA_TOKEN, PERSONA_ADMIN_TOKEN, METRICS_TOKEN, "
        "PERSONA_TLS_CERT_FILE/_KEY_FILE/_CLIENT_CA_FILE, LOG_LEVEL (see the README)",
        handler=_serve,
    )

    for name, help_text, handler in (
        ("get", "print the persona for a dialed number as JSON", _get),
        ("invalidate", "drop a number's cached persona", _invalidate),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("number", help="dialed number, e.g. +918655701159")
        sub.add_argument(
            "--target", default=env.text("PERSONA_TARGET", ports.PERSONA.local_target), help="HOST:PORT of the service"
        )
        sub.add_argument("--timeout", type=float, default=3.0, help="deadline in seconds (default 3)")
        sub.add_argument("--tls-ca", help="CA file to verify the server (enables TLS)")
        sub.add_argument("--tls-cert", help="client certificate file (mTLS)")
        sub.add_argument("--tls-key", help="client key file (mTLS)")
        sub.add_argument("--tls-server-name", help="expected server name when it differs from the target host")
        if name == "invalidate":
            # The admin token when the service has one; else InvalidatePersona takes the ordinary token.
            token = env.optional(("PERSONA_ADMIN_TOKEN", "PERSONA_TOKEN"))
            token_help = "bearer token (PERSONA_ADMIN_TOKEN, else PERSONA_TOKEN)"
        else:
            token, token_help = env.optional("PERSONA_TOKEN"), "bearer token (PERSONA_TOKEN)"
        sub.add_argument("--token", default=token, help=token_help)
        sub.add_argument("--trace-id", help="trace id to send (x-friday-trace-id), to find the call in service logs")
        if name == "get":
            sub.add_argument(
                "--allow-default", action="store_true", help="return the default persona instead of errors"
            )
            sub.add_argument(
                "--caller", default="", help="caller's number, for a campaign's caller match and sticky split"
            )
            sub.add_argument(
                "--at",
                type=_moment,
                help="evaluate a campaign's schedule at this time (ISO 8601 with an offset, e.g. 2026-12-25T10:00Z)",
            )
        sub.set_defaults(handler=handler)

    for name, help_text, handler in (
        ("notify", "tell PersonaService that the CRM changed these numbers (refetch + publish)", _notify),
        ("watch", "print persona changes as they happen (all numbers, or the ones named)", _watch),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("numbers", nargs="+" if name == "notify" else "*", metavar="NUMBER", help="dialed numbers")
        sub.add_argument(
            "--target", default=env.text("PERSONA_TARGET", ports.PERSONA.local_target), help="HOST:PORT of the service"
        )
        sub.add_argument("--tls-ca", help="CA file to verify the server (enables TLS)")
        sub.add_argument("--tls-cert", help="client certificate file (mTLS)")
        sub.add_argument("--tls-key", help="client key file (mTLS)")
        sub.add_argument("--tls-server-name", help="expected server name when it differs from the target host")
        sub.add_argument("--trace-id", help=argparse.SUPPRESS)
        if name == "notify":
            token = env.optional(("PERSONA_ADMIN_TOKEN", "PERSONA_TOKEN"))
            sub.add_argument("--token", default=token, help="bearer token (PERSONA_ADMIN_TOKEN, else PERSONA_TOKEN)")
            sub.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds (default 5)")
        else:
            sub.add_argument("--token", default=env.optional("PERSONA_TOKEN"), help="bearer token (PERSONA_TOKEN)")
            sub.add_argument("--resume-token", default="", help="continue after this event (from an earlier watch)")
            sub.add_argument("--json", action="store_true", help="one JSON object per event instead of a line")
            sub.add_argument("--timeout", type=float, default=5.0, help=argparse.SUPPRESS)
        sub.set_defaults(handler=handler)

    check = commands.add_parser(
        "check",
        help="validate a persona file or a CRM answer (persona or campaign) offline",
        description="Reads FILE as PERSONA_FILE reads it ({'default': …, 'personas': {number: …}}) or, without"
        " 'personas', as one CRM answer; exits 0 when every persona and campaign in it is usable, 1 with what is"
        " wrong otherwise.",
    )
    check.add_argument("file", help="JSON file")
    check.add_argument(
        "--region", default=env.text("PERSONA_DEFAULT_REGION", "IN"), help="region for numbers without +"
    )
    check.set_defaults(handler=_check)


def _serve(args: argparse.Namespace) -> int:
    from services.persona.config import PersonaConfig
    from services.persona.server import build_server, server_config_from_env

    read = lambda: (PersonaConfig.from_env(), server_config_from_env())  # noqa: E731
    return serve("persona serve", args, read, build_server, server_port_overrides(args))


def _tls(args: argparse.Namespace) -> ClientTLSConfig | None:
    from services.grpc_runtime import ClientTLSConfig

    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    return ClientTLSConfig(
        ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key, server_name_override=args.tls_server_name
    )


async def _call(args: argparse.Namespace, action: str) -> Any:
    from services.persona.client import PersonaClient

    trace_id = (lambda: args.trace_id) if args.trace_id else None
    async with PersonaClient(
        args.target, timeout=args.timeout, tls=_tls(args), bearer_token=args.token, trace_id=trace_id
    ) as client:
        if action == "get":
            return await client.get_persona(
                args.number, allow_default=args.allow_default, caller_number=args.caller, at=args.at
            )
        return await client.invalidate_persona(args.number)


def _run(args: argparse.Namespace, action: str) -> int:
    try:
        reply = asyncio.run(_call(args, action))
    except grpc.RpcError as exc:
        return _failed(args, exc)
    print(stable_json(reply))
    if action == "invalidate" and not reply.removed:
        print(_nothing_removed(reply), file=sys.stderr)
    return 0


def _failed(args: argparse.Namespace, exc: grpc.RpcError) -> int:
    """Prints the failed call as JSON; exit 2 when the request itself was refused, else 1."""
    from services.cli.call_errors import describe_rpc_error

    failure = describe_rpc_error(
        exc, service="PersonaService", target=args.target, target_setting=TARGET_SETTING, timeout=args.timeout
    )
    print(failure.as_json(), file=sys.stderr)
    return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1


def stable_json(message: Message) -> str:
    """protobuf JSON with the fields in proto order and every map's keys sorted: a map's
    iteration order changes from run to run, and output that reorders itself is noise in a diff."""
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _sort_maps(message, data)
    return json.dumps(data, indent=2, ensure_ascii=False)


def _sort_maps(message: Message, data: dict[str, Any]) -> None:
    for field in message.DESCRIPTOR.fields:
        if field.message_type is None or field.name not in data:
            continue
        value = getattr(message, field.name)
        if field.message_type.GetOptions().map_entry:
            data[field.name] = dict(sorted(data[field.name].items()))
        elif field.is_repeated:
            for item, item_data in zip(value, data[field.name], strict=True):
                _sort_maps(item, item_data)
        else:
            _sort_maps(value, data[field.name])


def _nothing_removed(reply: Any) -> str:
    """Why `"removed": false`, in the terms of what the service said about its source."""
    number = reply.normalized_number
    if not reply.source_cacheable:
        return (
            f"nothing to drop for {number}: this PersonaService serves a persona file, read at start-up, and caches "
            "nothing; to change a persona, edit the file (PERSONA_FILE) and restart the service"
        )
    dropped = (
        f"no cached persona for {number} to drop (never looked up on this replica, or already expired or invalidated)"
    )
    if not reply.refetched:
        return f"{dropped}; its next lookup asks the CRM either way"
    found = f"version {reply.version}" if reply.version else "the CRM has no persona for it"
    return f"{dropped}; fetched it from the CRM now: {found}"


def _get(args: argparse.Namespace) -> int:
    return _run(args, "get")


def _invalidate(args: argparse.Namespace) -> int:
    return _run(args, "invalidate")


def _moment(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time like 2026-12-25T10:00Z") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. Z or +05:30")
    return moment


def _check(args: argparse.Namespace) -> int:
    from services.persona.checking import check_document

    try:
        with open(args.file, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"friday persona check: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    report = check_document(document, default_region=args.region, origin=args.file)
    for line in report.lines:
        print(line)
    for problem in report.problems:
        print(f"friday persona check: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


def _client(args: argparse.Namespace) -> Any:
    from services.persona.client import PersonaClient

    return PersonaClient(args.target, timeout=args.timeout, tls=_tls(args), bearer_token=args.token)


def _notify(args: argparse.Namespace) -> int:
    async def call() -> Any:
        async with _client(args) as client:
            return await client.notify_changes(list(args.numbers))

    try:
        reply = asyncio.run(call())
    except grpc.RpcError as exc:
        return _failed(args, exc)
    print(stable_json(reply))
    return 0


# A stream that broke (the service restarted, a replica went away) is resumed from the
# last event after this long; a refusal (bad number, no token) ends the command.
_WATCH_RECONNECT_SECONDS = 1.0


def _watch(args: argparse.Namespace) -> int:
    token = args.resume_token

    async def follow() -> None:
        nonlocal token
        while True:
            try:
                async with _client(args) as client:
                    async for event in client.watch_personas(list(args.numbers), resume_token=token):
                        token = event.resume_token or token
                        line = _watch_line(event, as_json=args.json)
                        if line:
                            print(line, flush=True)
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    raise
                print(
                    f"friday persona watch: stream ended ({exc.code().name}); resuming from {token or 'now'}",
                    file=sys.stderr,
                    flush=True,
                )
            await asyncio.sleep(_WATCH_RECONNECT_SECONDS)

    try:
        asyncio.run(follow())
    except grpc.RpcError as exc:
        return _failed(args, exc)
    except KeyboardInterrupt:
        return 130
    return 0


def _watch_line(event: Any, *, as_json: bool) -> str:
    """One printed line per change or resync (keep-alives print nothing)."""
    if event.HasField("keep_alive"):
        return ""
    if as_json:
        return json.dumps(
            json_format.MessageToDict(event, preserving_proto_field_name=True), ensure_ascii=False, sort_keys=True
        )
    if event.HasField("resync"):
        return f"resync: changes may have been missed; re-read the numbers you follow (token {event.resume_token})"
    change = event.change
    when = change.changed_at.ToDatetime(datetime.UTC).isoformat(timespec="seconds")
    if change.removed:
        what = "removed"
    elif change.HasField("campaign"):
        what = f"{change.version} campaign {change.campaign.campaign_id}"
    else:
        what = f"{change.version} persona {change.persona.persona_id or '-'}"
    return f"{when}  {change.normalized_number}  {change.previous_version or 'new'} -> {what}"
