"""Gateway settings, read once from the environment into a frozen dataclass. The log
level (LOG_LEVEL) is every service's one setting: `services.common.tracing.log_level_from_env`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common import ports
from services.common.env import Environment, setting
from services.common.listen_address import LOOPBACK_HOST
from services.common.livekit_names import AGENT_NAME_ENV, DEFAULT_AGENT_NAME
from services.common.metrics_auth import METRICS_TOKEN_ENV
from services.grpc_runtime.config import ClientTLSConfig
from services.webhook_gateway.call_reporter import CallReportingConfig


@dataclass(frozen=True)
class HttpServerConfig:
    """How the gateway listens: the HTTP counterpart of grpc_runtime.ServerConfig."""

    # Loopback unless told otherwise: see services.common.listen_address.
    host: str = setting("GATEWAY_HOST", LOOPBACK_HOST)
    port: int = setting("PORT", ports.GATEWAY_HTTP)  # 0 picks a free port (tests)
    # On SIGTERM uvicorn stops accepting and finishes in-flight webhooks for up to this long
    # (whole seconds for uvicorn, rounded up).
    shutdown_grace_seconds: float = setting("GATEWAY_SHUTDOWN_GRACE_SECONDS", 5.0)
    # Limits on what an unauthenticated peer can hold (README, "What a hostile client gets").
    # Open connections past which a new request is answered 503 (uvicorn's
    # `limit_concurrency`; LiveKit retries a 503). Far above what one gateway serves: each
    # room has at most one webhook in flight, and a connection costs little once the
    # limits below hold.
    max_connections: int = setting("GATEWAY_MAX_CONNECTIONS", 1000)
    # Request line + headers (h11's `max_incomplete_event_size`): LiveKit's are well under
    # 1 KiB; anything longer is answered 400 and closed.
    max_header_bytes: int = setting("GATEWAY_MAX_HEADER_BYTES", 16 * 1024)
    # A connection must deliver each request's head, and then its body, within these
    # (read_deadlines.py). LiveKit writes a webhook in one go; a peer that dribbles is
    # closed, which LiveKit would see as a transport error and retry.
    header_timeout_seconds: float = setting("GATEWAY_HEADER_TIMEOUT_SECONDS", 10.0)
    body_timeout_seconds: float = setting("GATEWAY_BODY_TIMEOUT_SECONDS", 10.0)
    # An idle keep-alive connection is closed after this (uvicorn's `timeout_keep_alive`,
    # whole seconds, rounded up).
    keep_alive_seconds: float = setting("GATEWAY_KEEP_ALIVE_SECONDS", 5.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpServerConfig:
        return Environment(environ).fields(cls)


@dataclass(frozen=True)
class GatewayConfig:
    # The key pair LiveKit signs webhooks with (`webhook.api_key` in livekit.yaml): its API
    # key pair unless livekit.yaml names another.
    webhook_api_key: str = setting(("LIVEKIT_WEBHOOK_API_KEY", "LIVEKIT_API_KEY"), "devkey")
    webhook_api_secret: str = setting(("LIVEKIT_WEBHOOK_API_SECRET", "LIVEKIT_API_SECRET"), "secret", secret=True)
    persona_target: str = setting("PERSONA_TARGET", ports.PERSONA.local_target)
    dispatcher_target: str = setting("DISPATCHER_TARGET", ports.DISPATCHER.local_target)
    dispatcher_token: str | None = setting("DISPATCHER_TOKEN", None, secret=True)
    persona_token: str | None = setting("PERSONA_TOKEN", None, secret=True)
    agent_name: str = setting(AGENT_NAME_ENV, DEFAULT_AGENT_NAME)
    # The whole chain runs while the caller hears ringing: keep it short.
    budget_seconds: float = setting("GATEWAY_BUDGET_SECONDS", 3.0)
    # PersonaService gets at most this much of the budget; the rest is for the dispatch.
    persona_timeout_seconds: float = setting("GATEWAY_PERSONA_TIMEOUT_SECONDS", 1.0)
    max_body_bytes: int = setting("GATEWAY_MAX_BODY_BYTES", 1024 * 1024)
    dedupe_ttl_seconds: float = setting("GATEWAY_DEDUPE_TTL_SECONDS", 600.0)
    dedupe_max_entries: int = setting("GATEWAY_DEDUPE_MAX_ENTRIES", 100_000)
    redis_url: str | None = setting("REDIS_URL", None)
    redis_prefix: str = setting("GATEWAY_REDIS_PREFIX", "friday:gateway:")
    ready_timeout_seconds: float = setting("GATEWAY_READY_TIMEOUT_SECONDS", 0.5)
    persona_tls: ClientTLSConfig | None = None
    dispatcher_tls: ClientTLSConfig | None = None
    call_reporting: CallReportingConfig = CallReportingConfig()
    # What a scrape of /metrics must carry as `Authorization: Bearer …`; None = open.
    # The mesh's one METRICS_TOKEN (services.common.metrics_auth).
    metrics_token: str | None = setting(METRICS_TOKEN_ENV, None, secret=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        return Environment(environ).fields(
            cls,
            persona_tls=ClientTLSConfig.from_env("PERSONA", environ),
            dispatcher_tls=ClientTLSConfig.from_env("DISPATCHER", environ),
            call_reporting=CallReportingConfig.from_env(environ),
        )
