"""Method handlers that decode requests themselves.

grpcio's generated `add_XServicer_to_server` hands the request bytes to protobuf
before any handler or interceptor runs, so bytes that are not the request message
(invalid UTF-8 in a string, a corrupt wire format) end as UNKNOWN with an ERROR
traceback logged by grpcio itself. Registering the handlers with no deserializer and
parsing inside lets us answer what the contract promises: INVALID_ARGUMENT, with an
ErrorInfo, through the normal access log and metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from services.grpc_runtime.errors import abort_with_error

MALFORMED_REQUEST_DOMAIN = "grpc.friday"

# What a handler answers once the request is decoded: a unary method's response, or
# None for a streaming one, whose responses were written to the context.
Answer = TypeVar("Answer")
# A server-streaming method either yields its responses or writes them itself with
# `context.write` (and returns None): the second lets it be interrupted mid-write.
StreamBehaviour = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Message] | Awaitable[None]]
# A unary method that answers with its response already serialized: grpc sends bytes
# as they are when the handler has no response serializer, so a response that is the
# same call after call need not be built and serialized again for each (PersonaService's
# GetPersona; see README Performance).
EncodedBehaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[bytes]]


async def _refuse(request_class: type[Message], exc: DecodeError, context: grpc.aio.ServicerContext) -> NoReturn:
    await abort_with_error(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"request is not a valid {request_class.DESCRIPTOR.full_name}: {exc}",
        reason="MALFORMED_REQUEST",
        domain=MALFORMED_REQUEST_DOMAIN,
    )


# Parsing is inline in the handler (no coroutine of its own): it runs on every call,
# and only a refusal needs to await anything.


def _decode_then(
    behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Answer]], request_class: type[Message]
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Answer]]:
    parse = request_class.FromString

    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Answer:
        try:
            request = parse(raw)
        except DecodeError as exc:
            await _refuse(request_class, exc, context)
        return await behaviour(request, context)

    return handle


def _decode_then_stream(
    behaviour: StreamBehaviour, request_class: type[Message]
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[None]]:
    """The same decoding as a unary method's, then the responses written one by one."""

    async def write_responses(request: Any, context: grpc.aio.ServicerContext) -> None:
        result = behaviour(request, context)
        if isinstance(result, AsyncIterator):
            async for response in result:
                await context.write(response)
        else:
            await result

    return _decode_then(write_responses, request_class)


def method_handlers(
    servicer: Any, service: ServiceDescriptor, encoded: Mapping[str, EncodedBehaviour] | None = None
) -> dict[str, grpc.RpcMethodHandler]:
    """Handlers for every method of `service`, taken from `servicer`: unary, or server
    streaming (one request, a stream of responses). A unary method named in `encoded`
    is served by that behaviour instead, whose answer is the serialized response."""
    encoded = encoded or {}
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        if method.client_streaming:
            raise NotImplementedError(f"{method.full_name}: client-streaming methods are not hosted")
        request_class = GetMessageClass(method.input_type)
        serializer = GetMessageClass(method.output_type).SerializeToString
        if method.name in encoded:
            if method.server_streaming:
                raise NotImplementedError(f"{method.full_name}: only a unary method answers serialized")
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _decode_then(encoded[method.name], request_class),
                request_deserializer=None,
                response_serializer=None,
            )
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _decode_then_stream(getattr(servicer, method.name), request_class),
                request_deserializer=None,
                response_serializer=serializer,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _decode_then(getattr(servicer, method.name), request_class),
                request_deserializer=None,
                response_serializer=serializer,
            )
    return handlers


def add_decoding_servicer(
    servicer: Any,
    service: ServiceDescriptor,
    server: grpc.aio.Server,
    encoded: Mapping[str, EncodedBehaviour] | None = None,
) -> None:
    """What the generated `add_XServicer_to_server` does, with decoding moved inside, and
    as a generic handler only (see `server.GenericHandlersOnly` for why not registered)."""
    handlers = method_handlers(servicer, service, encoded)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
