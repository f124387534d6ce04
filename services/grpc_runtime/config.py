"""Frozen configuration for a gRPC server and for the channels that call one.

One dataclass per concern (as temporalio's `service.py` does), built either in
code (tests: port 0, no metrics) or from environment variables with a per-service
prefix (`ServerConfig.from_env("PERSONA", ports.PERSONA)` reads PERSONA_PORT, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.env import ConfigError, Environment
from services.common.listen_address import LOOPBACK_HOST
from services.common.metrics_auth import METRICS_TOKEN_ENV
from services.common.ports import ServicePorts


@dataclass(frozen=True)
class ServerTLSConfig:
    """Server certificate from files. With `client_ca_file` the server requires and
    verifies client certificates signed by that CA (mTLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None


@dataclass(frozen=True)
class ServerConfig:
    """How one gRPC server listens.

    `port=0` binds an ephemeral port; the bound one is `GrpcServer.port` after start.
    `metrics_port=None` disables the Prometheus HTTP endpoint; `0` binds an ephemeral
    port (tests), exposed as `GrpcServer.metrics_port`. (In the environment, a metrics
    port of 0 means *disabled*, following the project's env convention.)
    `auth_token`, when set, must arrive as `authorization: Bearer <token>` on every
    call except health and reflection. `admin_token`, when set, is what the methods a
    service declares as admin methods (`ServiceSpec.admin_methods`) require instead;
    unset, those methods require `auth_token` like the rest. `metrics_token`, when
    set, must arrive as `Authorization: Bearer <token>` on every scrape of /metrics
    (the metrics port's /health stays open).
    """

    # Loopback unless told otherwise: other machines reach a service only when its
    # host says so (see services.common.listen_address).
    host: str = LOOPBACK_HOST
    port: int = 0
    metrics_host: str = LOOPBACK_HOST
    metrics_port: int | None = None
    shutdown_grace_seconds: float = 5.0
    tls: ServerTLSConfig | None = None
    auth_token: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.admin_token and self.admin_token == self.auth_token:
            # One token for both would let every ordinary caller use the admin methods.
            raise ConfigError("the admin token must differ from the ordinary token")

    @classmethod
    def from_env(
        cls,
        prefix: str,
        defaults: ServicePorts,
        *,
        admin_token_env: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServerConfig:
        """Read `<PREFIX>_HOST`, `_PORT`, `_METRICS_HOST`, `_METRICS_PORT` (0 = disabled; the
        two ports default to `defaults`, the service's well-known ports in services.common.ports),
        `_SHUTDOWN_GRACE`, `_TLS_CERT_FILE`, `_TLS_KEY_FILE`, `_TLS_CLIENT_CA_FILE`, the
        token from `<PREFIX>_TOKEN` and, for a service with admin
        methods, the admin token from `admin_token_env`, and the metrics token from
        `METRICS_TOKEN`, which every service of the mesh shares (services.common.metrics_auth)."""
        env = Environment(environ)
        p = prefix.upper().rstrip("_") + "_"
        cert, key = env.optional(p + "TLS_CERT_FILE"), env.optional(p + "TLS_KEY_FILE")
        ca = env.optional(p + "TLS_CLIENT_CA_FILE")
        if (cert is None) != (key is None):
            raise ConfigError(f"{p}TLS_CERT_FILE and {p}TLS_KEY_FILE must be set together")
        if ca and not cert:
            raise ConfigError(f"{p}TLS_CLIENT_CA_FILE needs {p}TLS_CERT_FILE and {p}TLS_KEY_FILE")
        metrics_port = env.integer(p + "METRICS_PORT", defaults.metrics)
        token_name = p + "TOKEN"
        token = env.optional(token_name)
        admin_token = env.optional(admin_token_env) if admin_token_env else None
        if admin_token and admin_token == token:
            raise ConfigError(f"{admin_token_env} must differ from {token_name}")
        return cls(
            host=env.text(p + "HOST", cls.host),
            port=env.integer(p + "PORT", defaults.grpc),
            metrics_host=env.text(p + "METRICS_HOST", cls.metrics_host),
            metrics_port=metrics_port if metrics_port > 0 else None,
            shutdown_grace_seconds=env.number(p + "SHUTDOWN_GRACE", cls.shutdown_grace_seconds),
            tls=ServerTLSConfig(cert, key, ca) if cert and key else None,
            auth_token=token,
            admin_token=admin_token,
            metrics_token=env.optional(METRICS_TOKEN_ENV),
        )


@dataclass(frozen=True)
class ClientTLSConfig:
    """Channel TLS from files. `ca_file=None` uses the system roots; `cert_file` +
    `key_file` present a client certificate (mTLS). `server_name_override` is for
    certificates whose name does not match the target (tests, IP targets)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name_override: str | None = None

    @classmethod
    def from_env(cls, prefix: str, environ: Mapping[str, str] | None = None) -> ClientTLSConfig | None:
        """Read `<PREFIX>_TLS_CA_FILE`, `_TLS_CLIENT_CERT_FILE`, `_TLS_CLIENT_KEY_FILE`,
        `_TLS_SERVER_NAME`; None (plaintext) when none of them is set."""
        env = Environment(environ)
        p = prefix.upper().rstrip("_") + "_TLS_"
        config = cls(
            ca_file=env.optional(p + "CA_FILE"),
            cert_file=env.optional(p + "CLIENT_CERT_FILE"),
            key_file=env.optional(p + "CLIENT_KEY_FILE"),
            server_name_override=env.optional(p + "SERVER_NAME"),
        )
        return None if config == cls() else config


@dataclass(frozen=True)
class RetryPolicy:
    """A gRPC channel retry policy (service config `retryPolicy`). Only for services
    that do not retry internally (docs/architecture.md, "Deadlines and retries": never stack on tenacity)."""

    max_attempts: int = 3
    initial_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)
