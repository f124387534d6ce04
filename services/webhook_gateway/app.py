"""HTTP surface of the gateway (Starlette): `POST /livekit-webhook`, `/health`,
`/ready`, `/metrics` (behind METRICS_TOKEN when set) — the only module that knows
HTTP status codes. They follow LiveKit's delivery rules (docs/architecture.md,
"LiveKit webhook delivery"): 2xx once the dispatch exists or the event is
deliberately ignored, 4xx for what can never succeed (LiveKit does not retry
it), 5xx only when a redelivery may succeed (LiveKit retries 5xx except 501).
What the routes work with is wired in server.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.livekit_names import DEFAULT_AGENT_NAME
from services.common.metrics_auth import CHALLENGE, MetricsToken
from services.common.tracing import current_trace_id
from services.webhook_gateway import call_events
from services.webhook_gateway.call_flow import CallFlow, Dispatched, Duplicate, RoomGone
from services.webhook_gateway.call_reporter import CallReporter
from services.webhook_gateway.errors import BodyTooLarge
from services.webhook_gateway.events import Ignored, classify
from services.webhook_gateway.metrics import GatewayMetrics
from services.webhook_gateway.verification import MalformedEventError, SignatureError, WebhookVerifier

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/livekit-webhook"
_ACCEPTED_CONTENT_TYPES = ("application/webhook+json", "application/json")


@dataclass(frozen=True)
class GatewayState:
    """Everything the routes share, built once by the composition root."""

    verifier: WebhookVerifier
    flow: CallFlow
    metrics: GatewayMetrics
    max_body_bytes: int
    # upstream name → "is it SERVING?" (for /ready)
    readiness: dict[str, Callable[[], Awaitable[bool]]]
    # Call lifecycle facts for CallHistoryService; None when no CALLS_TARGET is set.
    calls: CallReporter | None = None
    agent_name: str = DEFAULT_AGENT_NAME
    # Required on /metrics when set; /health and /ready stay open for the kubelet's probes.
    metrics_token: MetricsToken | None = None


def create_app(wiring: Callable[[], AbstractAsyncContextManager[GatewayState]]) -> Starlette:
    """The routes, running on what `wiring()` builds for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with wiring() as state:
            app.state.gateway = state
            yield

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive_webhook, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def receive_webhook(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    started = time.perf_counter()
    authorization = request.headers.get("authorization")
    # Everything the head can refuse is refused before a byte of the body is read, and
    # the connection closed (`unread=True`): the peer may not make us read what it sends.
    try:
        token = state.verifier.check_token(authorization)
    except SignatureError as exc:
        return _answer(state, "unknown", "unauthorized", 401, str(exc), unread=True)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _ACCEPTED_CONTENT_TYPES:
        return _answer(
            state, "unknown", "unsupported_media_type", 415, f"content type {content_type!r} not accepted", unread=True
        )
    try:
        raw_body = await _read_limited(request, state.max_body_bytes)
    except BodyTooLarge:
        return _answer(state, "unknown", "too_large", 413, f"body over {state.max_body_bytes} bytes", unread=True)
    except ClientDisconnect:
        # The peer left (or missed its read deadline) mid-body: nobody is there to answer,
        # and a redelivery sends the whole body again. One line, no traceback.
        logger.info("webhook: client disconnected before its body was complete")
        state.metrics.count_webhook("unknown", "client_disconnected")
        return Response(status_code=400)
    try:
        event = state.verifier.receive(raw_body, token)
    except SignatureError as exc:
        return _answer(state, "unknown", "unauthorized", 401, str(exc))
    except MalformedEventError as exc:
        return _answer(state, "unknown", "malformed", 400, str(exc))

    event_name = event.event or "unknown"
    trace_token = current_trace_id.set(event.id or "-")
    if state.calls is not None:
        # Queued only, never awaited: the answer to LiveKit does not depend on the call history.
        state.calls.report(call_events.from_webhook(event, agent_name=state.agent_name))
    try:
        call = classify(event)
        if isinstance(call, Ignored):
            return _answer(state, event_name, "ignored", 200, call.reason, ignored=True)
        outcome = await state.flow.handle(call)
        if isinstance(outcome, Duplicate):
            state.metrics.duplicates.inc()
            return _answer(state, event_name, "duplicate", 200, outcome.reason, ignored=True)
        if isinstance(outcome, RoomGone):
            return _answer(state, event_name, "room_gone", 200, outcome.reason, ignored=True)
        if not isinstance(outcome, Dispatched):
            # 503: a redelivery may well succeed. 500: needs an operator (LiveKit still
            # retries it for ~15 s). 422: the request can never succeed, so LiveKit must not retry.
            status = 422 if outcome.invalid_request else 503 if outcome.retryable else 500
            response = _answer(state, event_name, "dispatch_failed", status, outcome.reason)
            if status == 503 and outcome.retry_after_seconds is not None:
                response.headers["Retry-After"] = str(outcome.retry_after_seconds)
            return response
        state.metrics.dispatch_latency.observe(time.perf_counter() - started)
        if state.calls is not None:
            state.calls.report(call_events.from_dispatch(call, outcome))
        state.metrics.count_persona_source(outcome.persona_source)
        if outcome.default_reason:
            state.metrics.defaults_used.inc()
        logger.info(
            "dispatched room=%s dispatch=%s existed=%s persona=%s source=%s",
            call.room,
            outcome.dispatch_id,
            outcome.already_existed,
            outcome.persona_id,
            outcome.persona_source,
        )
        state.metrics.count_webhook(event_name, "dispatched")
        return JSONResponse(
            {
                "status": "dispatched",
                "dispatch_id": outcome.dispatch_id,
                "already_existed": outcome.already_existed,
                "room": call.room,
                "persona_id": outcome.persona_id,
                "persona_name": outcome.persona_name,
                "persona_source": outcome.persona_source,
                "default_reason": outcome.default_reason,
                "trace_id": call.event_id,
            }
        )
    finally:
        current_trace_id.reset(trace_token)


def _answer(
    state: GatewayState,
    event: str,
    outcome: str,
    status: int,
    detail: str,
    *,
    ignored: bool = False,
    unread: bool = False,
) -> JSONResponse:
    """`unread`: refused before its body was read whole; closing the connection is what
    stops uvicorn from reading (and discarding) the rest of it."""
    state.metrics.count_webhook(event, outcome)
    if status >= 400:
        logger.warning("webhook %s: %s (%s)", outcome, detail, status)
    headers = {"Connection": "close"} if unread else None
    body = {"status": "ignored" if ignored else outcome, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_limited(request: Request, limit: int) -> bytes:
    """Refuse oversize bodies without holding them: trust a too-large
    Content-Length outright, and stop reading a stream once it passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    upstreams = {name: await is_serving() for name, is_serving in state.readiness.items()}
    all_ready = all(upstreams.values())
    return JSONResponse(
        {"status": "ready" if all_ready else "not_ready", "upstreams": upstreams},
        status_code=200 if all_ready else 503,
    )


async def metrics(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    if state.metrics_token is not None and not state.metrics_token.admits(request.headers.get("authorization")):
        return Response("metrics need a bearer token\n", status_code=401, headers=CHALLENGE, media_type="text/plain")
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
