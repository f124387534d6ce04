"""Frozen configuration of the dispatcher's domain logic (LiveKit, retries, claims),
read from the environment in one place. Server settings (port, token, TLS) belong to
the shared gRPC runtime's config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.env import Environment, setting
from services.grpc_runtime.config import ClientTLSConfig

# livekit-server --dev defaults: fine locally, never in production.
DEFAULT_LIVEKIT_URL = "http://localhost:7880"
DEFAULT_LIVEKIT_API_KEY = "devkey"
DEFAULT_LIVEKIT_API_SECRET = "secret"
DEFAULT_CLAIM_PREFIX = "friday:dispatcher:claim:"


@dataclass(frozen=True)
class LiveKitConfig:
    url: str = setting("LIVEKIT_URL", DEFAULT_LIVEKIT_URL)
    api_key: str = setting("LIVEKIT_API_KEY", DEFAULT_LIVEKIT_API_KEY)
    api_secret: str = setting("LIVEKIT_API_SECRET", DEFAULT_LIVEKIT_API_SECRET, secret=True)


@dataclass(frozen=True)
class RetryConfig:
    """Retries of one LiveKit request; all attempts also stop before the caller's deadline."""

    max_attempts: int = setting("DISPATCHER_RETRY_MAX_ATTEMPTS", 6)
    initial_backoff: float = setting("DISPATCHER_RETRY_INITIAL_BACKOFF_SECONDS", 0.05)
    max_backoff: float = setting("DISPATCHER_RETRY_MAX_BACKOFF_SECONDS", 1.0)
    # One attempt never waits longer than this, so a hung connection leaves room to retry.
    # Above 2 s: a LiveKit that answers in 2 s must still get its ListDispatch through
    # (at 2.0 every attempt was cut just before the answer and no call was ever dispatched;
    # the fault matrix's livekit_slow run). The gateway's 3 s budget caps it anyway.
    attempt_timeout: float = setting("DISPATCHER_RETRY_ATTEMPT_TIMEOUT_SECONDS", 2.5)


@dataclass(frozen=True)
class ClaimConfig:
    """The per-call claim that makes two replicas agree on who creates the dispatch."""

    redis_url: str | None = setting("REDIS_URL", None)
    key_prefix: str = setting("DISPATCHER_CLAIM_PREFIX", DEFAULT_CLAIM_PREFIX)
    # From before a create is sent, the claim lives at least this long, so a ListDispatch
    # that lags behind the create, or a create that lands after its sender crashed,
    # cannot let a second request create again: LiveKit's create latency must stay under it.
    settle_seconds: float = setting("DISPATCHER_CLAIM_SETTLE_SECONDS", 10.0)
    # How often a request that found the call claimed elsewhere polls ListDispatch.
    poll_interval: float = setting("DISPATCHER_CLAIM_POLL_INTERVAL_SECONDS", 0.1)
    # Socket (connect and read) timeout of each Redis claim op: short, so a blackholed
    # Redis costs a fraction of the dispatch budget, not all of it.
    redis_timeout: float = setting("DISPATCHER_REDIS_TIMEOUT_SECONDS", 0.25)
    # Redis unreachable: claim in this process (degraded: answered, at worst briefly
    # doubled and healed) rather than refuse the call (CLAIM_STORE_UNAVAILABLE).
    degraded_fallback: bool = setting("DISPATCHER_DEGRADED_CLAIMS", True)
    # While a create we cannot see may still land (degraded claims, a young process),
    # the room is re-read this often and extra dispatches deleted (reconcile.py).
    reconcile_interval: float = setting("DISPATCHER_RECONCILE_INTERVAL_SECONDS", 1.0)


@dataclass(frozen=True)
class JobConfig:
    """A dispatch is not an agent: how long DispatchAgent waits for a worker to take the job."""

    # Well inside the gateway's 3 s budget (the persona lookup takes up to 1 s of it).
    # A worker that is registered accepts in milliseconds; past this, none is coming
    # for now and the caller (LiveKit's redelivery) should try again.
    wait_seconds: float = setting("DISPATCHER_JOB_WAIT_SECONDS", 1.5)
    # LiveKit assigns the job after CreateDispatch has answered: one availability round
    # trip to a registered worker (a few milliseconds when it is near), so the first
    # ListDispatch comes this soon after the create; each later gap doubles up to
    # `poll_interval`, so a slow or absent worker costs LiveKit no more reads than a
    # fixed poll at that interval would.
    first_poll: float = setting("DISPATCHER_JOB_FIRST_POLL_SECONDS", 0.005)
    # The longest gap between two ListDispatch reads while waiting.
    poll_interval: float = setting("DISPATCHER_JOB_POLL_INTERVAL_SECONDS", 0.05)
    # How long a SIP trunk's numbers are remembered (hidden-number calls resolve through them).
    trunk_cache_seconds: float = setting("DISPATCHER_TRUNK_CACHE_SECONDS", 60.0)


@dataclass(frozen=True)
class CallHistoryConfig:
    """CallHistoryService, told of our creates that landed after their request failed
    (late_landings.py). No target: not told, and no LiveKit reads spent looking for them."""

    target: str | None = setting("CALLS_TARGET", None)
    token: str | None = setting("CALLS_TOKEN", None, secret=True)
    tls: ClientTLSConfig | None = None


@dataclass(frozen=True)
class DispatcherConfig:
    livekit: LiveKitConfig = LiveKitConfig()
    retry: RetryConfig = RetryConfig()
    claims: ClaimConfig = ClaimConfig()
    jobs: JobConfig = JobConfig()
    calls: CallHistoryConfig = CallHistoryConfig()
    # Work budget when the caller sent no deadline (Python shows it as a huge
    # time_remaining()); also the cap on any caller's deadline.
    max_budget_seconds: float = setting("DISPATCHER_MAX_BUDGET_SECONDS", 10.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DispatcherConfig:
        env = Environment(environ)
        return env.fields(
            cls,
            livekit=env.fields(LiveKitConfig),
            retry=env.fields(RetryConfig),
            claims=env.fields(ClaimConfig),
            jobs=env.fields(JobConfig),
            calls=env.fields(CallHistoryConfig, tls=ClientTLSConfig.from_env("CALLS", environ)),
        )
