"""The shared gRPC runtime every Friday service is hosted on (docs/architecture.md, "The shared gRPC runtime").

What a service gets: a grpc.aio server bound from a frozen `ServerConfig` (port 0 →
the bound port in `server.port`), standard health (overall "" + one status per
service, with dependency reporting), reflection (grpcurl/buf curl work without
protos), an access log (method, code, latency, trace id), Prometheus metrics on a
per-server CollectorRegistry served on `metrics_port`, optional bearer-token auth
with a separate admin token for the methods a service names as admin methods
(health and reflection stay open), TLS/mTLS from files, and graceful shutdown
(health NOT_SERVING, then `server.stop(grace)`) on SIGTERM/SIGINT.

How a service plugs in::

    from services.grpc_runtime import GrpcServer, ServerConfig, ServiceSpec, abort_with_error, remaining_budget

    config = ServerConfig.from_env("DISPATCHER", ports.DISPATCHER)    # or ServerConfig(port=0) in tests
    server = GrpcServer(config, name="dispatcher")
    my_metrics = MyMetrics(server.registry)                           # your Counters on the server's registry
    report_livekit = server.health.reporter(SERVICE_FULL_NAME, "livekit")   # async (healthy: bool) -> None
    server.health.add_probe(SERVICE_FULL_NAME, "livekit", probe_fn, interval_seconds=30)  # optional
    server.add_service(ServiceSpec.of(MyServicer(...), dispatcher_service_pb2, "DispatcherService"))
    # ServiceSpec.of(..., admin_methods=["InvalidatePersona"]): with ServerConfig.admin_token set,
    # those methods take only the admin token, and the ordinary token (auth_token) only the rest.
    server.on_startup(open_pools); server.on_shutdown(close_pools)    # async () -> None hooks

    await server.serve()            # CLI: blocks until SIGTERM/SIGINT, then drains
    # tests: `async with GrpcServer(ServerConfig(host="127.0.0.1", port=0), [spec]) as s: s.address`
    #        or `await server.start()` ... `await server.stop(grace=0)` in the test's event loop.

Inside a handler::

    budget = answer_budget(context, 2.0)      # min(caller's deadline, 2 s) less the answer margin
    await abort_with_error(context, grpc.StatusCode.NOT_FOUND, "no persona for +91…",
                           reason="PERSONA_NOT_FOUND", domain="persona.friday", metadata={"number": "+91…"})
    current_trace_id()                        # the caller's x-friday-trace-id, for logs
    peer_host(context.peer())                 # the caller's IP address ("10.0.0.7"), port dropped

Clients::

    channel = create_channel("localhost:50052", tls=ClientTLSConfig(ca_file=..., cert_file=..., key_file=...),
                             services=["friday.dispatcher.v1.DispatcherService"], retry=RetryPolicy(),
                             bearer_token=token, trace_id=current_trace_id)
    error_info(rpc_error)   # -> google.rpc.ErrorInfo | None on a failed call; error_reason(rpc_error) -> str
    class MyClient(ServiceClient): ...      # typed client: channel, deadline, token, ServiceCallError
"""

from services.grpc_runtime.call_metadata import RETRYABLE_CODES, call_metadata
from services.grpc_runtime.channel import DEFAULT_CHANNEL_OPTIONS, channel_credentials, create_channel, service_config
from services.grpc_runtime.client import ChannelClient, ServiceCallError, ServiceClient
from services.grpc_runtime.config import ClientTLSConfig, RetryPolicy, ServerConfig, ServerTLSConfig
from services.grpc_runtime.deadlines import answer_budget, less_answer_margin, remaining_budget
from services.grpc_runtime.errors import StatusTable, abort_with_error, error_info, error_reason, error_status
from services.grpc_runtime.health import NOT_SERVING, SERVING, DependencyReporter, HealthReporter
from services.grpc_runtime.interceptors import (
    AUTH_ERROR_DOMAIN,
    OPEN_METHOD_PREFIXES,
    BearerTokenAuthInterceptor,
    ObservingInterceptor,
    current_trace_id,
)
from services.grpc_runtime.metrics import LATENCY_BUCKETS, MetricsHTTPServer, ServerMetrics
from services.grpc_runtime.peers import peer_host
from services.grpc_runtime.server import GrpcServer, ServiceSpec

__all__ = [
    "AUTH_ERROR_DOMAIN",
    "DEFAULT_CHANNEL_OPTIONS",
    "LATENCY_BUCKETS",
    "NOT_SERVING",
    "OPEN_METHOD_PREFIXES",
    "RETRYABLE_CODES",
    "SERVING",
    "BearerTokenAuthInterceptor",
    "ChannelClient",
    "ClientTLSConfig",
    "DependencyReporter",
    "GrpcServer",
    "HealthReporter",
    "MetricsHTTPServer",
    "ObservingInterceptor",
    "RetryPolicy",
    "ServerConfig",
    "ServerMetrics",
    "ServerTLSConfig",
    "ServiceCallError",
    "ServiceClient",
    "ServiceSpec",
    "StatusTable",
    "abort_with_error",
    "answer_budget",
    "call_metadata",
    "channel_credentials",
    "create_channel",
    "current_trace_id",
    "error_info",
    "error_reason",
    "error_status",
    "less_answer_margin",
    "peer_host",
    "remaining_budget",
    "service_config",
]
