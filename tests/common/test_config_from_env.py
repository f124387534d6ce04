"""Every config's `from_env`: each field of the (nested) frozen dataclass is read from its
one environment variable, every variable lands in the field the table says, nothing else
is read, and a bad value stops the service with the variable's name."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from services.calls.config import CallerNumbers, CallsConfig
from services.common.env import ConfigError
from services.common.tracing import log_level_from_env
from services.dispatcher.config import DispatcherConfig
from services.grpc_runtime.config import ServerConfig
from services.persona.config import PersonaConfig
from services.persona.numbers import CrmNumberFormat
from services.persona.server import server_config_from_env as persona_server_config_from_env
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

# (variable, value set, field path, value expected there)
Row = tuple[str, str, str, object]

PERSONA: list[Row] = [
    ("PERSONA_API_BASE", "https://crm.test/personas", "crm.api_base", "https://crm.test/personas"),
    ("PERSONA_CRM_NUMBER_FORMAT", "E164", "crm.number_format", CrmNumberFormat.E164),
    ("PERSONA_CRM_TIMEOUT", "1.25", "crm.attempt_timeout_seconds", 1.25),
    ("PERSONA_CRM_MAX_ATTEMPTS", "5", "crm.max_attempts", 5),
    ("PERSONA_CRM_BACKOFF_INITIAL", "0.02", "crm.backoff_initial_seconds", 0.02),
    ("PERSONA_CRM_BACKOFF_MAX", "0.75", "crm.backoff_max_seconds", 0.75),
    ("PERSONA_CRM_PROBE_INTERVAL", "0", "crm.probe_interval_seconds", 0.0),
    ("PERSONA_CRM_BREAKER_FAILURES", "8", "crm.breaker_failures", 8),
    ("PERSONA_CRM_BREAKER_COOLDOWN", "2.5", "crm.breaker_cooldown_seconds", 2.5),
    ("PERSONA_CACHE_TTL", "60", "cache.ttl_seconds", 60.0),
    ("PERSONA_NEGATIVE_TTL", "7", "cache.negative_ttl_seconds", 7.0),
    ("PERSONA_MAX_STALE", "3600", "cache.max_stale_seconds", 3600.0),
    ("PERSONA_CACHE_MAX_ENTRIES", "123", "cache.max_entries", 123),
    ("PERSONA_LAST_KNOWN_GOOD_MAX_ENTRIES", "321", "cache.last_known_good_max_entries", 321),
    ("REDIS_URL", "redis://r:6379/3", "cache.redis_url", "redis://r:6379/3"),
    ("PERSONA_REDIS_PREFIX", "p:", "cache.redis_key_prefix", "p:"),
    ("PERSONA_REDIS_COOLDOWN", "2.5", "cache.redis_cooldown_seconds", 2.5),
    ("PERSONA_FILE", "/etc/friday/personas.json", "persona_file", "/etc/friday/personas.json"),
    ("PERSONA_DEFAULT_REGION", "us", "default_region", "US"),
    ("PERSONA_REQUEST_BUDGET", "2", "request_budget_seconds", 2.0),
    ("PERSONA_WATCH_KEEPALIVE", "4.5", "watch.keepalive_seconds", 4.5),
    ("PERSONA_WATCH_BUFFER", "64", "watch.buffer", 64),
    ("PERSONA_WATCH_HISTORY", "500", "watch.history", 500),
    ("PERSONA_NEW_NUMBER_RATE", "12.5", "new_numbers.rate", 12.5),
    ("PERSONA_NEW_NUMBER_BURST", "40", "new_numbers.burst", 40),
    ("PERSONA_NEW_NUMBER_PEER_RATE", "3", "new_numbers.peer_rate", 3.0),
    ("PERSONA_NEW_NUMBER_PEER_BURST", "9", "new_numbers.peer_burst", 9),
    (
        "PERSONA_NEW_NUMBER_PEER_EXEMPT",
        "10.0.0.7, 10.8.0.0/16,,",
        "new_numbers.peer_exempt",
        ("10.0.0.7", "10.8.0.0/16"),
    ),
]


def _calls_connection(path: str) -> list[Row]:
    """CALLS_TARGET, CALLS_TOKEN and CALLS_TLS_*, read into the config at `path`."""
    return [
        ("CALLS_TARGET", "dns:///calls:50053", f"{path}.target", "dns:///calls:50053"),
        ("CALLS_TOKEN", "c-token", f"{path}.token", "c-token"),
    ] + [
        (f"CALLS_TLS_{var}", f"/tls/CALLS-{var}", f"{path}.tls.{field}", f"/tls/CALLS-{var}")
        for var, field in (
            ("CA_FILE", "ca_file"),
            ("CLIENT_CERT_FILE", "cert_file"),
            ("CLIENT_KEY_FILE", "key_file"),
            ("SERVER_NAME", "server_name_override"),
        )
    ]


DISPATCHER: list[Row] = [
    ("LIVEKIT_URL", "https://lk.test", "livekit.url", "https://lk.test"),
    ("LIVEKIT_API_KEY", "APIkey", "livekit.api_key", "APIkey"),
    ("LIVEKIT_API_SECRET", "lk-secret", "livekit.api_secret", "lk-secret"),
    ("DISPATCHER_RETRY_MAX_ATTEMPTS", "4", "retry.max_attempts", 4),
    ("DISPATCHER_RETRY_INITIAL_BACKOFF_SECONDS", "0.01", "retry.initial_backoff", 0.01),
    ("DISPATCHER_RETRY_MAX_BACKOFF_SECONDS", "0.4", "retry.max_backoff", 0.4),
    ("DISPATCHER_RETRY_ATTEMPT_TIMEOUT_SECONDS", "1.75", "retry.attempt_timeout", 1.75),
    ("REDIS_URL", "redis://r:6379/4", "claims.redis_url", "redis://r:6379/4"),
    ("DISPATCHER_CLAIM_PREFIX", "c:", "claims.key_prefix", "c:"),
    ("DISPATCHER_CLAIM_SETTLE_SECONDS", "12", "claims.settle_seconds", 12.0),
    ("DISPATCHER_CLAIM_POLL_INTERVAL_SECONDS", "0.3", "claims.poll_interval", 0.3),
    ("DISPATCHER_REDIS_TIMEOUT_SECONDS", "0.5", "claims.redis_timeout", 0.5),
    ("DISPATCHER_DEGRADED_CLAIMS", "false", "claims.degraded_fallback", False),
    ("DISPATCHER_RECONCILE_INTERVAL_SECONDS", "0.5", "claims.reconcile_interval", 0.5),
    ("DISPATCHER_JOB_WAIT_SECONDS", "1.25", "jobs.wait_seconds", 1.25),
    ("DISPATCHER_JOB_FIRST_POLL_SECONDS", "0.002", "jobs.first_poll", 0.002),
    ("DISPATCHER_JOB_POLL_INTERVAL_SECONDS", "0.02", "jobs.poll_interval", 0.02),
    ("DISPATCHER_TRUNK_CACHE_SECONDS", "30", "jobs.trunk_cache_seconds", 30.0),
    ("DISPATCHER_MAX_BUDGET_SECONDS", "8", "max_budget_seconds", 8.0),
    *_calls_connection("calls"),
]
GATEWAY_SERVER: list[Row] = [
    ("GATEWAY_HOST", "127.0.0.2", "host", "127.0.0.2"),
    ("PORT", "8099", "port", 8099),
    ("GATEWAY_SHUTDOWN_GRACE_SECONDS", "7", "shutdown_grace_seconds", 7.0),
    ("GATEWAY_MAX_CONNECTIONS", "200", "max_connections", 200),
    ("GATEWAY_MAX_HEADER_BYTES", "8192", "max_header_bytes", 8192),
    ("GATEWAY_HEADER_TIMEOUT_SECONDS", "3.5", "header_timeout_seconds", 3.5),
    ("GATEWAY_BODY_TIMEOUT_SECONDS", "4.5", "body_timeout_seconds", 4.5),
    ("GATEWAY_KEEP_ALIVE_SECONDS", "2", "keep_alive_seconds", 2.0),
]
GATEWAY: list[Row] = (
    [
        ("LIVEKIT_WEBHOOK_API_KEY", "APIwebhook", "webhook_api_key", "APIwebhook"),
        ("LIVEKIT_WEBHOOK_API_SECRET", "webhook-secret", "webhook_api_secret", "webhook-secret"),
        ("PERSONA_TARGET", "dns:///persona:50051", "persona_target", "dns:///persona:50051"),
        ("DISPATCHER_TARGET", "dns:///dispatcher:50052", "dispatcher_target", "dns:///dispatcher:50052"),
        ("DISPATCHER_TOKEN", "d-token", "dispatcher_token", "d-token"),
        ("PERSONA_TOKEN", "p-token", "persona_token", "p-token"),
        ("METRICS_TOKEN", "m-token", "metrics_token", "m-token"),
        ("AGENT_TO_DISPATCH", "acme-agent", "agent_name", "acme-agent"),
        ("GATEWAY_BUDGET_SECONDS", "2.5", "budget_seconds", 2.5),
        ("GATEWAY_PERSONA_TIMEOUT_SECONDS", "0.75", "persona_timeout_seconds", 0.75),
        ("GATEWAY_MAX_BODY_BYTES", "65536", "max_body_bytes", 65536),
        ("GATEWAY_DEDUPE_TTL_SECONDS", "120", "dedupe_ttl_seconds", 120.0),
        ("GATEWAY_DEDUPE_MAX_ENTRIES", "5000", "dedupe_max_entries", 5000),
        ("REDIS_URL", "redis://r:6379/5", "redis_url", "redis://r:6379/5"),
        ("GATEWAY_REDIS_PREFIX", "g:", "redis_prefix", "g:"),
        ("GATEWAY_READY_TIMEOUT_SECONDS", "0.2", "ready_timeout_seconds", 0.2),
    ]
    + [
        (f"{svc}_TLS_{var}", f"/tls/{svc}-{var}", f"{svc.lower()}_tls.{field}", f"/tls/{svc}-{var}")
        for svc in ("PERSONA", "DISPATCHER")
        for var, field in (
            ("CA_FILE", "ca_file"),
            ("CLIENT_CERT_FILE", "cert_file"),
            ("CLIENT_KEY_FILE", "key_file"),
            ("SERVER_NAME", "server_name_override"),
        )
    ]
    + [
        ("GATEWAY_CALL_EVENTS_QUEUE_SIZE", "77", "call_reporting.queue_size", 77),
        ("GATEWAY_CALL_EVENTS_MAX_ATTEMPTS", "3", "call_reporting.max_attempts", 3),
        ("GATEWAY_CALL_EVENTS_ATTEMPT_TIMEOUT_SECONDS", "1.5", "call_reporting.attempt_timeout_seconds", 1.5),
        ("GATEWAY_CALL_EVENTS_INITIAL_BACKOFF_SECONDS", "0.3", "call_reporting.initial_backoff_seconds", 0.3),
        ("GATEWAY_CALL_EVENTS_MAX_BACKOFF_SECONDS", "4", "call_reporting.max_backoff_seconds", 4.0),
        ("GATEWAY_CALL_EVENTS_SENDERS", "2", "call_reporting.senders", 2),
        ("GATEWAY_CALL_EVENTS_MAX_BATCH", "20", "call_reporting.max_batch", 20),
        ("GATEWAY_CALL_EVENTS_LINGER_SECONDS", "0.25", "call_reporting.linger_seconds", 0.25),
        ("GATEWAY_CALL_EVENTS_DRAIN_SECONDS", "1.5", "call_reporting.drain_seconds", 1.5),
    ]
    + _calls_connection("call_reporting")
)
CALLS: list[Row] = [
    ("CALLS_DATABASE_URL", "postgresql://u@db/calls", "store.database_url", "postgresql://u@db/calls"),
    ("CALLS_DATABASE_SCHEMA", "friday", "store.database_schema", "friday"),
    ("CALLS_RETENTION_DAYS", "30", "retention_days", 30.0),
    ("CALLS_STORE_CALLER_NUMBERS", "FULL", "caller_numbers", CallerNumbers.FULL),
    ("CALLS_NO_AGENT_SECONDS", "15", "no_agent_seconds", 15.0),
    ("CALLS_SWEEP_INTERVAL_SECONDS", "2", "sweep_interval_seconds", 2.0),
    ("CALLS_SETTLE_SECONDS", "30", "settle_seconds", 30.0),
    ("CALLS_MAX_PAGE_SIZE", "100", "max_page_size", 100),
    ("CALL_EVENTS_URL", "https://hooks.test/friday", "events.url", "https://hooks.test/friday"),
    ("CALL_EVENTS_SECRET", "s" * 32, "events.secret", "s" * 32),
    ("CALL_EVENTS_TIMEOUT_SECONDS", "3", "events.timeout_seconds", 3.0),
    ("CALL_EVENTS_INITIAL_BACKOFF_SECONDS", "0.5", "events.initial_backoff_seconds", 0.5),
    ("CALL_EVENTS_MAX_BACKOFF_SECONDS", "30", "events.max_backoff_seconds", 30.0),
    ("CALL_EVENTS_POLL_INTERVAL_SECONDS", "0.5", "events.poll_interval_seconds", 0.5),
    ("CALL_EVENTS_LEASE_SECONDS", "20", "events.lease_seconds", 20.0),
    ("CALL_EVENTS_BATCH_SIZE", "10", "events.batch_size", 10),
]
AGENT: list[Row] = [
    ("AGENT_TO_DISPATCH", "acme-agent", "agent_name", "acme-agent"),
    ("FRIDAY_SPEECH_STACK", "AZURE", "stack", "azure"),
    ("FRIDAY_STT_MODEL", "stt/x", "inference.stt_model", "stt/x"),
    ("FRIDAY_LLM_MODEL", "llm/x", "inference.llm_model", "llm/x"),
    ("FRIDAY_TTS_MODEL", "tts/x", "inference.tts_model", "tts/x"),
    ("FRIDAY_TTS_VOICE", "luna", "inference.tts_voice", "luna"),
    ("FRIDAY_TTS_VOICES", "luna, sol", "inference.known_voices", frozenset({"luna", "sol"})),
    ("AZURE_OPENAI_DEPLOYMENT", "llm-dep", "azure.llm_deployment", "llm-dep"),
    ("AZURE_OPENAI_STT_DEPLOYMENT", "stt-dep", "azure.stt_deployment", "stt-dep"),
    ("AZURE_OPENAI_TTS_DEPLOYMENT", "tts-dep", "azure.tts_deployment", "tts-dep"),
    ("FRIDAY_OPENAI_LLM_MODEL", "gpt-x", "openai.llm_model", "gpt-x"),
    ("FRIDAY_OPENAI_STT_MODEL", "stt-x", "openai.stt_model", "stt-x"),
    ("FRIDAY_OPENAI_TTS_MODEL", "tts-x", "openai.tts_model", "tts-x"),
    ("FRIDAY_TTS_VOICE", "luna", "openai.tts_voice", "luna"),  # one voice setting for every stack
    ("FRIDAY_TTS_VOICE", "luna", "azure.tts_voice", "luna"),
    ("FRIDAY_LANGUAGE", "hi-IN", "language", "hi-IN"),
    ("FRIDAY_VAD", "none", "vad", False),
    ("FRIDAY_SIP_WAIT_SECONDS", "5", "sip_participant_timeout", 5.0),
    ("FRIDAY_GREETING_AUDIO_WAIT_SECONDS", "0.5", "greeting_audio_wait", 0.5),
    ("AGENT_HEALTH_HOST", "0.0.0.0", "health_host", "0.0.0.0"),
    ("FRIDAY_PERSONA_WATCH_TARGET", "persona:50051", "persona_target", "persona:50051"),
    ("PERSONA_TOKEN", "p-token", "persona_token", "p-token"),
]
SERVER: list[Row] = [
    ("PERSONA_HOST", "127.0.0.3", "host", "127.0.0.3"),
    ("PERSONA_PORT", "6001", "port", 6001),
    ("PERSONA_METRICS_HOST", "127.0.0.4", "metrics_host", "127.0.0.4"),
    ("PERSONA_METRICS_PORT", "6002", "metrics_port", 6002),
    ("PERSONA_SHUTDOWN_GRACE", "9", "shutdown_grace_seconds", 9.0),
    ("PERSONA_TLS_CERT_FILE", "/tls/cert", "tls.cert_file", "/tls/cert"),
    ("PERSONA_TLS_KEY_FILE", "/tls/key", "tls.key_file", "/tls/key"),
    ("PERSONA_TLS_CLIENT_CA_FILE", "/tls/ca", "tls.client_ca_file", "/tls/ca"),
    ("PERSONA_TOKEN", "s-token", "auth_token", "s-token"),
    ("PERSONA_ADMIN_TOKEN", "a-token", "admin_token", "a-token"),
    ("METRICS_TOKEN", "m-token", "metrics_token", "m-token"),
]


def _server_from_env(environ: Mapping[str, str] | None = None) -> ServerConfig:
    return persona_server_config_from_env(environ)


@dataclasses.dataclass(frozen=True)
class Case:
    from_env: Callable[[Mapping[str, str]], Any]
    defaults: Any
    table: list[Row]
    # Variables read only as a fallback of another or to pick a default.
    also_read: frozenset[str] = frozenset()


CASES = {
    "persona": Case(PersonaConfig.from_env, PersonaConfig(), PERSONA),
    "dispatcher": Case(DispatcherConfig.from_env, DispatcherConfig(), DISPATCHER),
    # The webhook key pair falls back to the LiveKit API key pair (LiveKit's own default).
    "gateway": Case(
        GatewayConfig.from_env, GatewayConfig(), GATEWAY, frozenset({"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"})
    ),
    "gateway server": Case(HttpServerConfig.from_env, HttpServerConfig(), GATEWAY_SERVER),
    "calls": Case(CallsConfig.from_env, CallsConfig(), CALLS),
    # OpenAI and Azure credentials pick the default speech stack (the openai client reads them itself).
    "agent": Case(
        AgentConfig.from_env,
        AgentConfig(),
        AGENT,
        frozenset({"AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "OPENAI_API_KEY"}),
    ),
    "server": Case(_server_from_env, ServerConfig(port=50051, metrics_port=9101), SERVER),
}


def leaf_paths(cls: type, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every field that is not itself a config dataclass (or an optional one)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        nested = [m for m in members if dataclasses.is_dataclass(m)]
        if nested:
            yield from leaf_paths(nested[0], f"{prefix}{field.name}.")
        else:
            yield prefix + field.name


def value_at(config: object, path: str) -> object:
    return functools.reduce(lambda obj, name: getattr(obj, name, None), path.split("."), config)


class RecordingEnv(Mapping[str, str]):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("name", CASES)
def test_every_field_is_read_from_one_variable(name: str) -> None:
    case = CASES[name]
    paths = [path for _, _, path, _ in case.table]
    assert len(paths) == len(set(paths)), "a field read from two variables"
    assert set(paths) == set(leaf_paths(type(case.defaults)))


@pytest.mark.parametrize("name", CASES)
def test_every_variable_lands_in_its_field(name: str) -> None:
    case = CASES[name]
    config = case.from_env({var: raw for var, raw, _, _ in case.table})
    for var, raw, path, expected in case.table:
        assert value_at(config, path) == expected, f"{var}={raw!r} -> {path}"
        assert value_at(case.defaults, path) != expected, f"{path}: pick a test value other than the default"


@pytest.mark.parametrize("name", CASES)
def test_nothing_else_is_read(name: str) -> None:
    case = CASES[name]
    recording = RecordingEnv()
    case.from_env(recording)
    assert recording.names == {var for var, _, _, _ in case.table} | case.also_read


@pytest.mark.parametrize("name", CASES)
def test_an_empty_environment_gives_the_defaults(name: str) -> None:
    case = CASES[name]
    assert case.from_env({}) == case.defaults
    assert case.from_env({var: " " for var, _, _, _ in case.table}) == case.defaults  # blank = unset


def test_the_gateway_verifies_with_the_livekit_key_pair_unless_a_webhook_pair_is_set() -> None:
    api = {"LIVEKIT_API_KEY": "APIlk", "LIVEKIT_API_SECRET": "lk-secret"}
    config = GatewayConfig.from_env(api)
    assert (config.webhook_api_key, config.webhook_api_secret) == ("APIlk", "lk-secret")
    config = GatewayConfig.from_env({**api, "LIVEKIT_WEBHOOK_API_KEY": "APIwh", "LIVEKIT_WEBHOOK_API_SECRET": "wh"})
    assert (config.webhook_api_key, config.webhook_api_secret) == ("APIwh", "wh")


def test_secrets_stay_out_of_repr() -> None:
    gateway = GatewayConfig.from_env({var: raw for var, raw, _, _ in GATEWAY})
    dispatcher = DispatcherConfig.from_env({var: raw for var, raw, _, _ in DISPATCHER})
    server = _server_from_env({var: raw for var, raw, _, _ in SERVER})
    for config, secrets in (
        (gateway, ("webhook-secret", "d-token", "p-token")),
        (dispatcher, ("lk-secret",)),
        (server, ("s-token", "a-token")),
    ):
        assert not [secret for secret in secrets if secret in repr(config)]


def test_log_level_is_one_setting_checked_against_logging() -> None:
    assert log_level_from_env({}) == "INFO"
    assert log_level_from_env({"LOG_LEVEL": "debug"}) == "DEBUG"
    with pytest.raises(ConfigError, match="LOG_LEVEL='loud' is not one of"):
        log_level_from_env({"LOG_LEVEL": "loud"})


@pytest.mark.parametrize(
    ("from_env", "variable", "value", "message"),
    [
        (PersonaConfig.from_env, "PERSONA_CACHE_TTL", "abc", "PERSONA_CACHE_TTL='abc' is not a number"),
        (PersonaConfig.from_env, "PERSONA_CRM_NUMBER_FORMAT", "intl", "PERSONA_CRM_NUMBER_FORMAT='intl' is not one of"),
        (
            PersonaConfig.from_env,
            "PERSONA_NEW_NUMBER_PEER_EXEMPT",
            "10.0.0.7, gateway",
            "PERSONA_NEW_NUMBER_PEER_EXEMPT='10.0.0.7, gateway' is not a list of IP addresses or networks: 'gateway'",
        ),
        (DispatcherConfig.from_env, "DISPATCHER_RETRY_MAX_ATTEMPTS", "many", "'many' is not a whole number"),
        (GatewayConfig.from_env, "GATEWAY_DEDUPE_MAX_ENTRIES", "1e5", "'1e5' is not a whole number"),
        (AgentConfig.from_env, "FRIDAY_VAD", "maybe", "FRIDAY_VAD='maybe' is not one of"),
        (_server_from_env, "PERSONA_PORT", "http", "PERSONA_PORT='http' is not a whole number"),
    ],
)
def test_a_bad_value_is_refused_by_name(from_env, variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_env({variable: value})


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (("persona", "serve"), "PERSONA_CACHE_TTL"),
        (("dispatcher", "serve"), "DISPATCHER_CLAIM_SETTLE_SECONDS"),
        (("gateway", "serve"), "GATEWAY_BUDGET_SECONDS"),
        (("persona", "serve"), "LOG_LEVEL"),
    ],
)
def test_serve_commands_stop_with_the_variable_named(command: tuple[str, ...], variable: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), variable: "soon"}
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert f"friday {' '.join(command)}: {variable}='soon' is not" in result.stderr
    assert "Traceback" not in result.stderr
