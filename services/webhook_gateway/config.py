"""Gateway settings, read once from the environment into a frozen dataclass. The log
level (LOG_LEVEL) is every service's one setting: `services.common.tracing.log_level_from_env`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.env import Environment, Name
from services.common.listen_address import LOOPBACK_HOST
from services.common.livekit_names import AGENT_NAME_ENV, DEFAULT_AGENT_NAME
from services.common.metrics_auth import METRICS_TOKEN_ENV
from services.grpc_runtime.config import ClientTLSConfig
from services.webhook_gateway.call_reporter import CallReportingConfig


@dataclass(frozen=True)
class HttpServerConfig:
    """How the gateway listens: the HTTP counterpart of grpc_runtime.ServerConfig."""

    # Loopback unless told otherwise (GATEWAY_HOST): see services.common.listen_address.
    host: str = LOOPBACK_HOST
    port: int = 8080  # 0 picks a free port (tests)
    # On SIGTERM uvicorn stops accepting and finishes in-flight webhooks for up to this long.
    shutdown_grace_seconds: float = 5.0  # whole seconds for uvicorn, rounded up
    # Limits on what an unauthenticated peer can hold (README, "What a hostile client gets").
    # Open connections past which a new request is answered 503 (uvicorn's
    # `limit_concurrency`; LiveKit retries a 503). Far above what one gateway serves: each
    # room has at most one webhook in flight, and a connection costs little once the
    # limits below hold.
    max_connections: int = 1000
    # Request line + headers (h11's `max_incomplete_event_size`): LiveKit's are well under
    # 1 KiB; anything longer is answered 400 and closed.
    max_header_bytes: int = 16 * 1024
    # A connection must deliver each request's head, and then its body, within these
    # (read_deadlines.py). LiveKit writes a webhook in one go; a peer that dribbles is
    # closed, which LiveKit would see as a transport error and retry.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    # An idle keep-alive connection is closed after this (uvicorn's `timeout_keep_alive`,
    # whole seconds, rounded up).
    keep_alive_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpServerConfig:
        variables = {
            "host": "GATEWAY_HOST",
            "port": "PORT",
            "shutdown_grace_seconds": "GATEWAY_SHUTDOWN_GRACE_SECONDS",
            "max_connections": "GATEWAY_MAX_CONNECTIONS",
            "max_header_bytes": "GATEWAY_MAX_HEADER_BYTES",
            "header_timeout_seconds": "GATEWAY_HEADER_TIMEOUT_SECONDS",
            "body_timeout_seconds": "GATEWAY_BODY_TIMEOUT_SECONDS",
            "keep_alive_seconds": "GATEWAY_KEEP_ALIVE_SECONDS",
        }
        return Environment(environ).fields(cls, variables)


@dataclass(frozen=True)
class GatewayConfig:
    # The key pair LiveKit signs webhooks with (`webhook.api_key` in livekit.yaml).
    webhook_api_key: str = "devkey"
    webhook_api_secret: str = field(default="secret", repr=False)
    persona_target: str = "localhost:50051"
    dispatcher_target: str = "localhost:50052"
    dispatcher_token: str | None = field(default=None, repr=False)
    persona_token: str | None = field(default=None, repr=False)
    agent_name: str = DEFAULT_AGENT_NAME
    # The whole chain runs while the caller hears ringing: keep it short.
    budget_seconds: float = 3.0
    # PersonaService gets at most this much of the budget; the rest is for the dispatch.
    persona_timeout_seconds: float = 1.0
    max_body_bytes: int = 1024 * 1024
    dedupe_ttl_seconds: float = 600.0
    dedupe_max_entries: int = 100_000
    redis_url: str | None = None
    redis_prefix: str = "friday:gateway:"
    ready_timeout_seconds: float = 0.5
    persona_tls: ClientTLSConfig | None = None
    dispatcher_tls: ClientTLSConfig | None = None
    call_reporting: CallReportingConfig = CallReportingConfig()
    # What a scrape of /metrics must carry as `Authorization: Bearer …`; None = open.
    # The mesh's one METRICS_TOKEN (services.common.metrics_auth).
    metrics_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        variables: dict[str, Name] = {
            # LiveKit signs webhooks with its API key pair unless livekit.yaml names another.
            "webhook_api_key": ("LIVEKIT_WEBHOOK_API_KEY", "LIVEKIT_API_KEY"),
            "webhook_api_secret": ("LIVEKIT_WEBHOOK_API_SECRET", "LIVEKIT_API_SECRET"),
            "persona_target": "PERSONA_TARGET",
            "dispatcher_target": "DISPATCHER_TARGET",
            "dispatcher_token": "DISPATCHER_TOKEN",
            "persona_token": "PERSONA_TOKEN",
            "agent_name": AGENT_NAME_ENV,
            "budget_seconds": "GATEWAY_BUDGET_SECONDS",
            "persona_timeout_seconds": "GATEWAY_PERSONA_TIMEOUT_SECONDS",
            "max_body_bytes": "GATEWAY_MAX_BODY_BYTES",
            "dedupe_ttl_seconds": "GATEWAY_DEDUPE_TTL_SECONDS",
            "dedupe_max_entries": "GATEWAY_DEDUPE_MAX_ENTRIES",
            "redis_url": "REDIS_URL",
            "redis_prefix": "GATEWAY_REDIS_PREFIX",
            "ready_timeout_seconds": "GATEWAY_READY_TIMEOUT_SECONDS",
            "metrics_token": METRICS_TOKEN_ENV,
        }
        return Environment(environ).fields(
            cls,
            variables,
            persona_tls=ClientTLSConfig.from_env("PERSONA", environ),
            dispatcher_tls=ClientTLSConfig.from_env("DISPATCHER", environ),
            call_reporting=CallReportingConfig.from_env(environ),
        )
