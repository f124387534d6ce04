"""Gateway settings, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from services.grpc_runtime.config import ClientTLSConfig

DEFAULT_AGENT_NAME = "friday-ai-agent"


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 8080
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
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayConfig:
        env = dict(os.environ if env is None else env)
        defaults = cls()

        def get(name: str, fallback: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else fallback

        return cls(
            host=get("GATEWAY_HOST", defaults.host) or defaults.host,
            port=int(get("PORT", str(defaults.port)) or defaults.port),
            webhook_api_key=get("LIVEKIT_WEBHOOK_API_KEY", get("LIVEKIT_API_KEY", defaults.webhook_api_key))
            or defaults.webhook_api_key,
            webhook_api_secret=get("LIVEKIT_WEBHOOK_API_SECRET", get("LIVEKIT_API_SECRET", defaults.webhook_api_secret))
            or defaults.webhook_api_secret,
            persona_target=get("PERSONA_TARGET", defaults.persona_target) or defaults.persona_target,
            dispatcher_target=get("DISPATCHER_TARGET", defaults.dispatcher_target) or defaults.dispatcher_target,
            dispatcher_token=get("DISPATCHER_TOKEN"),
            persona_token=get("PERSONA_TOKEN"),
            agent_name=get("AGENT_TO_DISPATCH", defaults.agent_name) or defaults.agent_name,
            budget_seconds=float(get("GATEWAY_BUDGET_SECONDS", str(defaults.budget_seconds)) or 3.0),
            persona_timeout_seconds=float(
                get("GATEWAY_PERSONA_TIMEOUT_SECONDS", str(defaults.persona_timeout_seconds)) or 1.0
            ),
            max_body_bytes=int(get("GATEWAY_MAX_BODY_BYTES", str(defaults.max_body_bytes)) or 0),
            dedupe_ttl_seconds=float(get("GATEWAY_DEDUPE_TTL_SECONDS", str(defaults.dedupe_ttl_seconds)) or 600),
            redis_url=get("REDIS_URL"),
            redis_prefix=get("GATEWAY_REDIS_PREFIX", defaults.redis_prefix) or defaults.redis_prefix,
            log_level=get("LOG_LEVEL", defaults.log_level) or defaults.log_level,
            persona_tls=ClientTLSConfig.from_env("PERSONA", env),
            dispatcher_tls=ClientTLSConfig.from_env("DISPATCHER", env),
        )
