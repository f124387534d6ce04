"""Wires PersonaService onto the shared gRPC runtime: picks the source (CRM, persona
file, or the bundled example), the cache (in-process, + Redis when configured),
health reporting for the CRM, and the servicer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from redis import asyncio as aioredis

from friday.persona.v1 import persona_service_pb2
from services.common import ports
from services.common.leases import RedisLeases
from services.common.redis_client import redis_client
from services.grpc_runtime import GrpcServer, ServerConfig, ServiceSpec
from services.persona.admission import NewNumberAdmission
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CachePolicy
from services.persona.changes import Change, ChangeFeed, ChangeLog, InMemoryChangeLog
from services.persona.config import PersonaConfig
from services.persona.crm import CrmPersonaSource, CrmSettings
from services.persona.lookup import BreakerPolicy, PersonaLookup
from services.persona.memory_cache import MemoryCache
from services.persona.metrics import PersonaMetrics
from services.persona.persona_file import PersonaFileSource
from services.persona.redis_cache import RedisCache
from services.persona.redis_changes import READER_TIMEOUT_SECONDS, RedisChangeLog
from services.persona.servicer import SERVICE_NAME, PersonaServicer
from services.persona.sources import PersonaSourceBackend

logger = logging.getLogger(__name__)


# Dropping cached personas is for operators (and a CRM's change hook), not for every caller
# of GetPersona: with PERSONA_ADMIN_TOKEN set, only that token may call these.
ADMIN_METHODS = ("InvalidatePersona", "NotifyPersonaChanges")


def server_config_from_env(environ: Mapping[str, str] | None = None) -> ServerConfig:
    """PERSONA_PORT, PERSONA_METRICS_PORT, PERSONA_TLS_*, PERSONA_TOKEN, PERSONA_ADMIN_TOKEN, ..."""
    return ServerConfig.from_env(
        "PERSONA",
        ports.PERSONA,
        admin_token_env="PERSONA_ADMIN_TOKEN",
        environ=environ,
    )


def build_source(config: PersonaConfig, metrics: PersonaMetrics) -> PersonaSourceBackend:
    if config.crm.api_base:
        return CrmPersonaSource(
            CrmSettings(
                base_url=config.crm.api_base,
                number_format=config.crm.number_format,
                attempt_timeout_seconds=config.crm.attempt_timeout_seconds,
                max_attempts=config.crm.max_attempts,
                backoff_initial_seconds=config.crm.backoff_initial_seconds,
                backoff_max_seconds=config.crm.backoff_max_seconds,
            ),
            observe_latency=lambda outcome, seconds: metrics.crm_latency.labels(outcome).observe(seconds),
            count_error=lambda kind: metrics.crm_errors.labels(kind).inc(),
            count_retry=metrics.crm_retries.inc,
        )
    if config.persona_file:
        return PersonaFileSource.from_path(config.persona_file, default_region=config.default_region)
    return PersonaFileSource.example(default_region=config.default_region)


def build_feed(config: PersonaConfig, metrics: PersonaMetrics, server: GrpcServer) -> ChangeFeed:
    """Where changes go: a Redis stream every replica reads when they share Redis, else
    this process only. The stream's reader has a client of its own (it blocks)."""
    url = config.cache.redis_url

    def make_log(deliver: Callable[[Change], None]) -> ChangeLog:
        if url is None:
            return InMemoryChangeLog(deliver, history=config.watch.history)
        log = RedisChangeLog(
            redis_client(url),
            redis_client(url, timeout_seconds=READER_TIMEOUT_SECONDS),
            key=config.cache.redis_key_prefix + "changes",
            deliver=deliver,
            history=config.watch.history,
            count_error=lambda op: metrics.redis_errors.labels(f"changes_{op}").inc(),
        )
        server.on_startup(log.start)
        return log

    return ChangeFeed(make_log, buffer=config.watch.buffer, on_drop=metrics.watchers_dropped.inc)


def build_server(config: PersonaConfig, server_config: ServerConfig) -> GrpcServer:
    """A ready-to-start server (`await server.start()` or `await server.serve()`)."""
    server = GrpcServer(server_config, name="persona")
    metrics = PersonaMetrics(server.registry)
    source = build_source(config, metrics)
    # One Redis client (one pool) for the shared cache and the fetch lease.
    redis: aioredis.Redis | None = redis_client(config.cache.redis_url) if config.cache.redis_url else None
    shared = None
    if redis is not None:
        shared = RedisCache(
            redis,
            key_prefix=config.cache.redis_key_prefix,
            on_corrupt=lambda key: metrics.cache_corrupt.inc(),
            owns_client=False,
        )
    cache = PersonaCache(
        MemoryCache(config.cache.max_entries),
        shared,
        count_shared_error=lambda op: metrics.redis_errors.labels(op).inc(),
        redis_cooldown_seconds=config.cache.redis_cooldown_seconds,
    )
    # Only a remote source is worth coalescing across replicas.
    lease = (
        RedisLeases(redis, config.cache.redis_key_prefix + "fetch-lease:", owns_client=False)
        if redis is not None and source.cacheable
        else None
    )
    report = report_breaker = None
    if source.cacheable:  # a remote source: its reachability is part of our health
        report = server.health.reporter(SERVICE_NAME, "crm")
        report_breaker = server.health.reporter(SERVICE_NAME, "crm_breaker")
        if config.crm.probe_interval_seconds > 0:
            server.health.add_probe(SERVICE_NAME, "crm", source.probe, config.crm.probe_interval_seconds)
    feed = build_feed(config, metrics, server) if source.cacheable else None
    lookup = PersonaLookup(
        source,
        cache,
        metrics,
        default_region=config.default_region,
        policy=CachePolicy(
            ttl_seconds=config.cache.ttl_seconds,
            negative_ttl_seconds=config.cache.negative_ttl_seconds,
            max_stale_seconds=config.cache.max_stale_seconds,
            last_known_good_max_entries=config.cache.last_known_good_max_entries,
        ),
        breaker=BreakerPolicy(config.crm.breaker_failures, config.crm.breaker_cooldown_seconds),
        admission=NewNumberAdmission(config.new_numbers),
        report_source_health=report,
        report_breaker_health=report_breaker,
        lease=lease,
        fetch_budget_seconds=config.request_budget_seconds,
        feed=feed,
    )
    servicer = PersonaServicer(
        lookup,
        metrics,
        budget_seconds=config.request_budget_seconds,
        watch_keepalive_seconds=config.watch.keepalive_seconds,
    )
    server.add_service(
        ServiceSpec.of(
            servicer,
            persona_service_pb2,
            "PersonaService",
            admin_methods=ADMIN_METHODS,
            encoded_methods={"GetPersona": servicer.get_persona_encoded},
        )
    )

    async def close() -> None:
        if feed is not None:
            await feed.log.aclose()
        await lookup.aclose()  # fetches still running for callers that have gone
        await source.aclose()
        await cache.aclose()
        if redis is not None:
            await redis.aclose()

    server.on_shutdown(close)
    logger.info(
        "persona source: %s; cache: %s; region %s; CRM number format %s",
        f"CRM {config.crm.api_base}" if config.crm.api_base else getattr(source, "origin", "file"),
        f"redis ({config.cache.redis_key_prefix}*, one CRM fetch per number across replicas) + in-process"
        if shared
        else "in-process",
        config.default_region,
        config.crm.number_format.value,
    )
    return server
