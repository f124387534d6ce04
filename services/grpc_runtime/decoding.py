"""Method handlers that decode requests themselves.

grpcio's generated `add_XServicer_to_server` hands the request bytes to protobuf
before any handler or interceptor runs, so bytes that are not the request message
(invalid UTF-8 in a string, a corrupt wire format) end as UNKNOWN with an ERROR
traceback logged by grpcio itself. Registering the handlers with no deserializer and
parsing inside lets us answer what the contract promises: INVALID_ARGUMENT, with an
ErrorInfo, through the normal access log and metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from services.grpc_runtime.errors import abort_with_error

MALFORMED_REQUEST_DOMAIN = "grpc.friday"

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Message]]


def _decode_then(behaviour: Behaviour, request_class: type[Message]) -> Behaviour:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        try:
            request = request_class.FromString(raw)
        except DecodeError as exc:
            await abort_with_error(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid {request_class.DESCRIPTOR.full_name}: {exc}",
                reason="MALFORMED_REQUEST",
                domain=MALFORMED_REQUEST_DOMAIN,
            )
        return await behaviour(request, context)

    return handle


def method_handlers(servicer: Any, service: ServiceDescriptor) -> dict[str, grpc.RpcMethodHandler]:
    """Unary-unary handlers for every method of `service`, taken from `servicer`."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise NotImplementedError(f"{method.full_name}: only unary methods are hosted")
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _decode_then(getattr(servicer, method.name), GetMessageClass(method.input_type)),
            request_deserializer=None,
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
    return handlers


def add_decoding_servicer(servicer: Any, service: ServiceDescriptor, server: grpc.aio.Server) -> None:
    """What the generated `add_XServicer_to_server` does, with decoding moved inside."""
    handlers = method_handlers(servicer, service)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
