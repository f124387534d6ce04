"""Server interceptors: access log + metrics (one observer around every call) and
optional bearer-token auth, with a separate token for a service's admin methods.
Health and reflection stay open when auth is on.

Order on the server: observe first (outermost), then auth, so rejected calls are
logged and counted too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, TypeAlias

import grpc

from services.common import tracing
from services.common.log_safety import safe_trace_id
from services.common.tracing import TRACE_ID_METADATA_KEY
from services.grpc_runtime.errors import error_status
from services.grpc_runtime.metrics import LabelledChildren, ServerMetrics

access_log = logging.getLogger("friday.grpc.access")

# Methods that must answer without a token: probes and tooling (docs/architecture.md, "Health, reflection and auth").
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
AUTH_ERROR_DOMAIN = "auth.friday"


# The value services.common.tracing.current_trace_id holds when there is no trace:
# what log lines show ("trace=-"), never what is forwarded to the next service.
_NO_TRACE = "-"


def current_trace_id() -> str:
    """The trace id sent by the caller of the current RPC ('' when none).

    Reads the one process-wide context variable (services.common.tracing), which
    ObservingInterceptor sets for every call, so this and the `trace=` of every log
    line always agree."""
    trace_id = tracing.current_trace_id.get()
    return "" if trace_id == _NO_TRACE else trace_id


def _metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> str:
    for item_key, value in metadata or ():
        if item_key == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return ""


def _final_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN  # what grpc sends for an unhandled exception
    return grpc.StatusCode.OK


Behavior = Callable[..., Any]
# Subscripted only for the type checker: grpc's classes are not generic at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any] | None"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]"


def _replace_behavior(handler: Any, wrap: Callable[[Behavior, bool], Behavior]) -> Any:
    """Rebuild `handler` with its behaviour wrapped; `wrap(behavior, streams_response)`."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False), handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, True), handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, False), handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, True), handler.request_deserializer, handler.response_serializer
    )


class _HandlerInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that works on the handler a call's method resolves to. A method
    the server does not know resolves to None and passes through untouched (grpc answers
    UNIMPLEMENTED), so `_intercept` always has a handler."""

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self._intercept(handler, handler_call_details)

    def _intercept(self, handler: Any, handler_call_details: grpc.HandlerCallDetails) -> Handler:
        raise NotImplementedError


class _HandlerCache:
    """Wrapped handlers, built once per handler. grpc asks the interceptors for every call,
    but the handler a method resolves to is the same object each time (the servicer's,
    or the auth interceptor's cached refusal), so its wrapped form is too: building it
    per call (a new handler, new closures) was a large part of the runtime's cost per call.
    Bounded by the handlers that exist: an unknown method resolves to None, never cached."""

    def __init__(self, build: Callable[[Any, str], Any]) -> None:
        self._build = build
        self._built: dict[int, tuple[Any, Any]] = {}

    def get(self, handler: Any, method: str) -> Any:
        found = self._built.get(id(handler))
        if found is not None and found[0] is handler:
            return found[1]
        wrapped = self._build(handler, method)
        # The handler is held beside its wrapped form, so its id cannot be reused while cached.
        self._built[id(handler)] = (handler, wrapped)
        return wrapped


class _MethodObserver:
    """What one method's calls are counted and logged under, resolved once per method:
    its Prometheus children (a `labels()` lookup takes a lock and builds a key per
    call) and its access-log level."""

    __slots__ = ("_counted", "latency", "level", "method")

    def __init__(self, method: str, metrics: ServerMetrics | None) -> None:
        self.method = method
        # Health checks arrive every few seconds from probes: keep them out of INFO logs.
        self.level = logging.DEBUG if method.startswith("/grpc.health.v1.Health/") else logging.INFO
        self.latency = metrics.latency.labels(method) if metrics is not None else None
        self._counted = LabelledChildren(metrics.requests) if metrics is not None else None

    def finish(
        self, context: grpc.aio.ServicerContext, started: float, error: BaseException | None, trace_id: str
    ) -> None:
        elapsed = time.perf_counter() - started
        code = _final_code(context, error)
        if self._counted is not None and self.latency is not None:
            self._counted(self.method, code.name).inc()
            self.latency.observe(elapsed)
        if access_log.isEnabledFor(self.level):  # the peer and the line are built only when written
            access_log.log(
                self.level,
                "grpc method=%s code=%s latency_ms=%.1f trace_id=%s peer=%s",
                self.method,
                code.name,
                elapsed * 1000,
                trace_id,
                context.peer(),
            )


class _ObservedCall:
    """One call, unary or streaming alike: the caller's trace id in current_trace_id while
    it runs, then counted and logged under its final code (whatever ended it, cancellation
    and a closed stream included)."""

    __slots__ = ("_context", "_observer", "_started", "_token", "_traced_as")

    def __init__(self, observer: _MethodObserver, context: grpc.aio.ServicerContext) -> None:
        self._observer = observer
        self._context = context

    def __enter__(self) -> None:
        self._traced_as = _caller_trace_id(self._context)
        self._token = tracing.current_trace_id.set(self._traced_as)
        self._started = time.perf_counter()

    def __exit__(self, _type: object, error: BaseException | None, _traceback: object) -> None:
        self._observer.finish(self._context, self._started, error, self._traced_as)
        tracing.current_trace_id.reset(self._token)


def _caller_trace_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's trace id made safe (any caller can send any header), or "-" for none."""
    trace_id = _metadata_value(context.invocation_metadata(), TRACE_ID_METADATA_KEY)
    return safe_trace_id(trace_id) if trace_id else _NO_TRACE


class ObservingInterceptor(_HandlerInterceptor):
    """Access log line + Prometheus counter/histogram for every call, and the caller's
    trace id in services.common.tracing.current_trace_id for the whole call (so every
    log line of the handler carries it through TraceIdLogFilter), reset afterwards.
    The trace id is set even when the caller sent none, so nothing from the serving
    task's context leaks in."""

    def __init__(self, metrics: ServerMetrics | None) -> None:
        self._metrics = metrics
        self._observers: dict[str, _MethodObserver] = {}
        self._handlers = _HandlerCache(self._observed)

    def _intercept(self, handler: Any, handler_call_details: grpc.HandlerCallDetails) -> Handler:
        return self._handlers.get(handler, handler_call_details.method)

    def _observed(self, handler: Any, method: str) -> Any:
        observer = self._observers.get(method)
        if observer is None:
            observer = self._observers[method] = _MethodObserver(method, self._metrics)

        def wrap(behavior: Behavior, streams_response: bool) -> Behavior:
            if streams_response and inspect.isasyncgenfunction(behavior):

                async def observed_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    with _ObservedCall(observer, context):
                        async for item in behavior(request, context):
                            yield item

                return observed_stream

            async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with _ObservedCall(observer, context):
                    return await behavior(request, context)

            return observed

        return _replace_behavior(handler, wrap)


class BearerTokenAuthInterceptor(_HandlerInterceptor):
    """Require `authorization: Bearer <token>`; UNAUTHENTICATED (with ErrorInfo reason
    MISSING_TOKEN / INVALID_TOKEN) otherwise. Health and reflection stay open.

    One token per method: `admin_methods` (full names, `/pkg.Service/Method`) require
    `admin_token` when it is set, every other method requires `token` (open when it
    is None). The admin token opens only the admin methods and the ordinary token
    never opens them, so whoever holds the ordinary token (the gateway) cannot use
    them. Without an admin token the admin methods require `token` like the rest."""

    def __init__(
        self, token: str | None, *, admin_token: str | None = None, admin_methods: Collection[str] = ()
    ) -> None:
        if token == "" or admin_token == "":
            raise ValueError("an empty token would accept everyone")
        if token is None and admin_token is None:
            raise ValueError("no token to require")
        self._ordinary = _Expected(token) if token is not None else None
        self._admin = _Expected(admin_token) if admin_token is not None else self._ordinary
        self._admin_methods = frozenset(admin_methods)
        self._refusals: dict[tuple[str, str], Any] = {}

    def _expected_for(self, method: str) -> _Expected | None:
        return self._admin if method in self._admin_methods else self._ordinary

    def _intercept(self, handler: Any, handler_call_details: grpc.HandlerCallDetails) -> Handler:
        method = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        expected = self._expected_for(method)
        if expected is None:
            return handler
        presented = _metadata_value(handler_call_details.invocation_metadata, "authorization")
        if presented and expected.matches(presented):
            return handler
        reason = "MISSING_TOKEN" if not presented else "INVALID_TOKEN"
        refusal = self._refusals.get((method, reason))
        if refusal is None:
            # One per method and reason (bounded by the methods served): the observing
            # interceptor then meets the same refusal handler each time and wraps it once.
            refusal = self._refusals[(method, reason)] = self._refusal(handler, method, reason, expected)
        return refusal

    def _refusal(self, handler: Any, method: str, reason: str, expected: _Expected) -> Any:
        needs = "the admin bearer token" if expected is not self._ordinary else "a bearer token"
        status = error_status(
            grpc.StatusCode.UNAUTHENTICATED,
            f"{method} needs {needs}" if reason == "MISSING_TOKEN" else f"invalid bearer token for {method}",
            reason=reason,
            domain=AUTH_ERROR_DOMAIN,
        )

        def wrap(behavior: Behavior, streams_response: bool) -> Behavior:
            async def reject(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await context.abort_with_status(status)

            return reject

        return _replace_behavior(handler, wrap)


class _Expected:
    """The header value one token must arrive as, compared in constant time: both sides
    are hashed first, so neither the content nor the length of the token leaks through
    how long a comparison takes."""

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(f"Bearer {token}".encode()).digest()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)
