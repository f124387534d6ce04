"""`friday simulate-call`: a phone call without a phone. Creates the call's room in
LiveKit (a caller is in the room before LiveKit sends the join, and LiveKit answers
nothing about a room it does not hold), sends the gateway the `participant_joined`
webhook LiveKit sends when a SIP caller joins, signed the way LiveKit signs it, and
prints what the gateway answered."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from services.common import ports
from services.common.env import Environment


def register(subparsers: argparse._SubParsersAction) -> None:
    env = Environment()
    simulate = subparsers.add_parser(
        "simulate-call",
        help="send a signed SIP participant_joined webhook to the gateway",
        description="Builds the webhook LiveKit sends when a caller dials NUMBER, signs it with the webhook key "
        "pair, posts it to the gateway and prints the answer (dispatch id, persona, source).",
    )
    simulate.add_argument("--to", required=True, help="the number dialed (sip.trunkPhoneNumber)")
    simulate.add_argument("--from", dest="caller", default="+14155550100", help="the caller (sip.phoneNumber)")
    simulate.add_argument("--room", help="room name (default: a new call-… name)")
    simulate.add_argument("--call-id", help="sip.callID (default: random SCL_…)")
    simulate.add_argument(
        "--gateway",
        default=env.text("FRIDAY_GATEWAY_URL", f"http://localhost:{env.text('PORT', str(ports.GATEWAY_HTTP))}"),
        help=f"gateway base URL (env FRIDAY_GATEWAY_URL, default http://localhost:$PORT or :{ports.GATEWAY_HTTP})",
    )
    simulate.add_argument(
        "--api-key",
        default=env.text(("LIVEKIT_WEBHOOK_API_KEY", "LIVEKIT_API_KEY"), "devkey"),
        help="webhook signing key (env LIVEKIT_WEBHOOK_API_KEY / LIVEKIT_API_KEY, default devkey)",
    )
    simulate.add_argument(
        "--api-secret",
        default=env.text(("LIVEKIT_WEBHOOK_API_SECRET", "LIVEKIT_API_SECRET"), "secret"),
        help="webhook signing secret (env LIVEKIT_WEBHOOK_API_SECRET / LIVEKIT_API_SECRET, default secret)",
    )
    simulate.add_argument(
        "--livekit-url",
        default=env.text("LIVEKIT_URL", "http://localhost:7880"),
        help="LiveKit server to create the call's room in first (env LIVEKIT_URL, default http://localhost:7880)",
    )
    simulate.add_argument(
        "--livekit-api-key", default=env.text("LIVEKIT_API_KEY", "devkey"), help="env LIVEKIT_API_KEY, default devkey"
    )
    simulate.add_argument(
        "--livekit-api-secret",
        default=env.text("LIVEKIT_API_SECRET", "secret"),
        help="env LIVEKIT_API_SECRET, default secret",
    )
    simulate.add_argument("--no-room", action="store_true", help="do not create the room in LiveKit first")
    simulate.add_argument(
        "--repeat", type=int, default=1, help="deliver the same signed webhook N times (as LiveKit redelivers)"
    )
    simulate.add_argument(
        "--agent-join",
        action="store_true",
        help="then send our own agent's participant_joined (no second dispatch; the call is answered)",
    )
    simulate.add_argument(
        "--answer-after", type=float, default=1.5, help="seconds from ring to the agent's join (default 1.5)"
    )
    simulate.add_argument(
        "--hangup",
        action="store_true",
        help="then send the caller's participant_left and the room's room_finished (the call ends)",
    )
    simulate.add_argument(
        "--talk-seconds", type=float, default=30.0, help="seconds from the agent's join to the hang-up (default 30)"
    )
    simulate.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")
    simulate.add_argument("--json", action="store_true", help="print the raw answers as JSON lines")
    simulate.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    import httpx

    from services.testing import livekit_webhooks as webhooks

    room = args.room or webhooks.random_id("call-", 8)
    # LiveKit's clock for the call: the ring now, the agent and the hang-up at the times asked
    # for (the call history takes answer time and duration from these, not from its own clock).
    ring_ms = time.time_ns() // 1_000_000
    answer_ms = ring_ms + round(args.answer_after * 1000)
    hangup_ms = answer_ms + round(args.talk_seconds * 1000)
    event = webhooks.sip_participant_joined(
        room=room, dialed_number=args.to, caller_number=args.caller, call_id=args.call_id, joined_at_ms=ring_ms
    )
    body, headers = webhooks.signed_request(event, args.api_key, args.api_secret)
    deliveries = [("sip join", body, headers)] * max(1, args.repeat)
    if args.agent_join:
        agent = webhooks.agent_participant_joined(room=room, joined_at_ms=answer_ms)
        deliveries.append(("agent join", *webhooks.signed_request(agent, args.api_key, args.api_secret)))
    if args.hangup:
        left = webhooks.sip_participant_left(event, created_at=hangup_ms // 1000)
        finished = webhooks.room_finished(room=room, created_at=hangup_ms // 1000 + 1)
        deliveries.append(("hang-up", *webhooks.signed_request(left, args.api_key, args.api_secret)))
        deliveries.append(("room finished", *webhooks.signed_request(finished, args.api_key, args.api_secret)))

    url = args.gateway.rstrip("/") + "/livekit-webhook"
    print(f"room {room}  call {event.participant.attributes['sip.callID']}  event {event.id}  -> {url}")
    if not args.no_room:
        try:
            asyncio.run(asyncio.wait_for(_create_room(args, room), args.timeout))
        except Exception as exc:  # noqa: BLE001 — the webhook still shows what the gateway does without LiveKit
            print(f"could not create room {room} in LiveKit at {args.livekit_url}: {exc}", file=sys.stderr)
    dispatched = False
    with httpx.Client(timeout=args.timeout) as client:
        for attempt, (what, payload, payload_headers) in enumerate(deliveries, start=1):
            try:
                response = client.post(url, content=payload, headers=payload_headers)
            except httpx.HTTPError as exc:
                print(f"{attempt}. {what}: gateway unreachable at {url}: {exc}", file=sys.stderr)
                return 1
            answer = _json_or_text(response)
            if args.json:
                print(json.dumps({"delivery": what, "http_status": response.status_code, "answer": answer}))
            else:
                print(f"{attempt}. {what}: HTTP {response.status_code} {_summary(answer)}")
            if what == "sip join" and response.status_code == 200 and answer.get("status") == "dispatched":
                dispatched = True
    return 0 if dispatched else 1


async def _create_room(args: argparse.Namespace, room: str) -> None:
    from livekit import api

    async with api.LiveKitAPI(args.livekit_url, args.livekit_api_key, args.livekit_api_secret, failover=False) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room))


def _json_or_text(response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {"detail": response.text}
    return answer if isinstance(answer, dict) else {"detail": answer}


def _summary(answer: dict) -> str:
    if answer.get("status") == "dispatched":
        existed = " (already existed)" if answer.get("already_existed") else ""
        persona = f"{answer.get('persona_name')} [{answer.get('persona_id')}]"
        source = answer.get("persona_source")
        line = f"dispatched {answer.get('dispatch_id')}{existed}  persona {persona}  source {source}"
        if answer.get("default_reason"):
            line += f"  (default because: {answer['default_reason']})"
        return line
    return f"{answer.get('status', '')}: {answer.get('detail', '')}"
