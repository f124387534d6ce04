"""The persona lookup: normalise → cache → one coalesced source fetch → stale →
default. Pure asyncio + protobuf: no httpx, no grpc (the source and the cache
are injected; the gRPC layer maps the errors in errors.py to status codes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.common.default_persona import default_persona
from services.common.leases import LeaseStoreUnavailable, TokenLeases
from services.grpc_runtime.deadlines import less_answer_margin
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry
from services.persona.errors import (
    CrmUnavailableError,
    InvalidNumberError,
    LookupDeadlineError,
    PersonaNotFoundError,
)
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber, InvalidPhoneNumber, parse_dialed_number
from services.persona.sources import PersonaSourceBackend, SourceUnavailable

logger = logging.getLogger(__name__)

# A fetch lease outlives its holder's deadline by this much (time to store the result).
_LEASE_GRACE_SECONDS = 0.25


@dataclass(frozen=True)
class CachePolicy:
    ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 30.0
    max_stale_seconds: float = 86_400.0


@dataclass(frozen=True)
class Resolution:
    persona: Persona
    source: PersonaSource.ValueType
    normalized_number: str
    age_seconds: float = 0.0
    default_reason: DefaultReason.ValueType = DefaultReason.DEFAULT_REASON_UNSPECIFIED


# The `why` label of persona_default_served_total for each reason.
_DEFAULT_LABELS: dict[DefaultReason.ValueType, str] = {
    DefaultReason.DEFAULT_REASON_NOT_FOUND: "not_found",
    DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE: "unavailable",
    DefaultReason.DEFAULT_REASON_DEADLINE_EXCEEDED: "deadline",
    DefaultReason.DEFAULT_REASON_SOURCE_INVALID: "invalid",
}


class PersonaLookup:
    def __init__(
        self,
        source: PersonaSourceBackend,
        cache: PersonaCache,
        metrics: PersonaMetrics,
        *,
        default_region: str,
        policy: CachePolicy = CachePolicy(),
        report_source_health: Callable[[bool], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        lease: TokenLeases | None = None,
        lease_poll_seconds: float = 0.02,
        fetch_budget_seconds: float = 3.0,
    ) -> None:
        self.source = source
        self.cache = cache
        self.metrics = metrics
        self.default_region = default_region
        self.policy = policy
        self._report = report_source_health
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[Persona | None]] = {}
        # How long a shared source fetch may run: the service's own cap on a request,
        # not the budget of whichever caller happened to start it (see _fetch_coalesced).
        self.fetch_budget_seconds = fetch_budget_seconds
        # Single-flight across replicas: the replica holding a number's lease (in the
        # Redis they share) fetches it and stores it in the shared cache; the others
        # poll that cache until it appears or the lease is gone (holder failed or died).
        self.lease = lease
        self._lease_poll_seconds = lease_poll_seconds
        self._lease_down = False

    def parse(self, text: str) -> DialedNumber:
        try:
            return parse_dialed_number(text, self.default_region)
        except InvalidPhoneNumber as exc:
            raise InvalidNumberError(str(exc)) from exc

    async def get(self, text: str, *, allow_default: bool, budget_seconds: float) -> Resolution:
        """The persona for dialed number `text` within `budget_seconds` (the caller's
        budget already less the time it needs to send the answer)."""
        number = self.parse(text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_seconds

        if not self.source.cacheable:  # the persona file is already in memory
            persona = await self.source.fetch(number, deadline)
            if persona is not None:
                return Resolution(persona, PersonaSource.PERSONA_SOURCE_STATIC_FILE, number.e164)
            return self._not_found(number, allow_default)

        entry = await self.cache.get(number.e164)
        now = self._clock()
        if entry is not None and entry.age(now) < self._fresh_for(entry):
            self.metrics.cache_hits.inc()
            if entry.persona is None:
                return self._not_found(number, allow_default, cached=True)
            return Resolution(entry.persona, PersonaSource.PERSONA_SOURCE_CACHE, number.e164, entry.age(now))
        self.metrics.cache_misses.inc()

        try:
            persona = await self._fetch_coalesced(number, deadline)
        except SourceUnavailable as exc:
            out_of_time = exc.kind == "deadline" or loop.time() >= deadline - 0.005
            stale = entry if entry is not None and entry.persona is not None else None
            if stale is not None and stale.age(self._clock()) <= self.policy.max_stale_seconds:
                self.metrics.stale_serves.inc()
                logger.warning("serving stale persona for %s (age %.0fs): %s", number.e164, stale.age(now), exc)
                assert stale.persona is not None
                return Resolution(
                    stale.persona, PersonaSource.PERSONA_SOURCE_STALE_CACHE, number.e164, stale.age(self._clock())
                )
            error: CrmUnavailableError | LookupDeadlineError
            if out_of_time:
                error = LookupDeadlineError(f"ran out of time looking up {number.e164}: {exc}", number.e164)
                reason = DefaultReason.DEFAULT_REASON_DEADLINE_EXCEEDED
            else:
                error = CrmUnavailableError(f"CRM unavailable for {number.e164}: {exc}", number.e164)
                reason = (
                    DefaultReason.DEFAULT_REASON_SOURCE_INVALID
                    if exc.kind == "malformed"
                    else DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE
                )
            return self._default_or(error, number, reason, allow_default)

        if persona is None:
            return self._not_found(number, allow_default)
        return Resolution(persona, PersonaSource.PERSONA_SOURCE_CRM, number.e164)

    async def invalidate(self, text: str) -> tuple[str, bool]:
        number = self.parse(text)
        removed = await self.cache.delete(number.e164)
        logger.info("invalidated %s (removed=%s)", number.e164, removed)
        return number.e164, removed

    def _fresh_for(self, entry: CacheEntry) -> float:
        return self.policy.negative_ttl_seconds if entry.negative else self.policy.ttl_seconds

    def _not_found(self, number: DialedNumber, allow_default: bool, *, cached: bool = False) -> Resolution:
        error = PersonaNotFoundError(f"no persona for {number.e164}{' (cached)' if cached else ''}", number.e164)
        return self._default_or(error, number, DefaultReason.DEFAULT_REASON_NOT_FOUND, allow_default)

    def _default_or(
        self, error: Exception, number: DialedNumber, reason: DefaultReason.ValueType, allow_default: bool
    ) -> Resolution:
        if not allow_default:
            raise error
        self.metrics.default_serves.labels(_DEFAULT_LABELS[reason]).inc()
        persona = self.source.default_persona() or default_persona()
        return Resolution(persona, PersonaSource.PERSONA_SOURCE_DEFAULT, number.e164, default_reason=reason)

    async def _fetch_coalesced(self, number: DialedNumber, deadline: float) -> Persona | None:
        """One source fetch per number at a time; everyone else waits for it (each
        only as long as its own budget allows).

        The fetch itself runs to a service-level deadline (a full request budget from
        its start), not to the deadline of the caller that started it: otherwise a
        caller with 100 ms would doom a call with 900 ms that joined 10 ms later. A
        caller that gives up leaves the fetch running for the others (and the cache)."""
        key = number.e164
        task = self._inflight.get(key)
        if task is None:
            loop = asyncio.get_running_loop()
            fetch_deadline = loop.time() + less_answer_margin(self.fetch_budget_seconds)
            task = asyncio.create_task(self._fetch_and_store(number, fetch_deadline), name=f"persona-fetch:{key}")
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._fetch_done(key, done))
        else:
            self.metrics.coalesced.inc()
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            # shield: a caller that gives up must not cancel the fetch the others wait on.
            return await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, remaining))
        except TimeoutError as exc:
            raise SourceUnavailable("deadline", f"no answer from the source within the budget for {key}") from exc

    async def aclose(self) -> None:
        """Cancels the fetches nobody waits for any more (at shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fetch_done(self, key: str, task: asyncio.Task[Persona | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an abandoned failure is not logged as "never retrieved"

    async def _fetch_and_store(self, number: DialedNumber, deadline: float) -> Persona | None:
        # The lease lives in the cache's Redis: while the cache's breaker skips Redis, so do we.
        if self.lease is None or self.cache.breaker_open():
            return await self._fetch_from_source(number, deadline)
        try:
            return await self._fetch_once_across_replicas(self.lease, number, deadline)
        except LeaseStoreUnavailable as exc:
            # Availability over dedupe: without the lease store each replica asks the CRM itself.
            if not self._lease_down:
                logger.warning("fetch lease unavailable; fetching without cross-replica coalescing: %s", exc)
            self._lease_down = True
            self.cache.shared_failed("lease", exc)
            return await self._fetch_from_source(number, deadline)

    async def _fetch_once_across_replicas(
        self, lease: TokenLeases, number: DialedNumber, deadline: float
    ) -> Persona | None:
        key = number.e164
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            token = await lease.try_acquire(key, remaining + _LEASE_GRACE_SECONDS)
            self._lease_down = False
            if token is not None:
                try:
                    # Another replica may have stored it between our cache read and our lease.
                    entry = await self._fresh_entry(key)
                    if entry is not None:
                        return entry.persona
                    return await self._fetch_from_source(number, deadline)
                finally:
                    await lease.release(key, token)
            self.metrics.peer_waits.inc()
            entry = await self._await_peer_fetch(lease, key, deadline)
            if entry is not None:
                return entry.persona
            # The holder let go without storing anything (its fetch failed, or it died
            # and its lease expired): take over.
        raise SourceUnavailable("deadline", f"no answer for {key} within the budget (another replica was fetching)")

    async def _await_peer_fetch(self, lease: TokenLeases, key: str, deadline: float) -> CacheEntry | None:
        """Polls the shared cache while another replica holds the lease. The entry it
        stored, or None once the lease is free without one."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            entry = await self._fresh_entry(key)
            if entry is not None:
                return entry
            if not await lease.is_held(key):
                # The holder stores before it releases: look once more, then give up waiting.
                return await self._fresh_entry(key)
            await asyncio.sleep(min(self._lease_poll_seconds, max(0.0, deadline - loop.time())))
        return None

    async def _fresh_entry(self, key: str) -> CacheEntry | None:
        entry = await self.cache.get(key)
        if entry is not None and entry.age(self._clock()) < self._fresh_for(entry):
            return entry
        return None

    async def _fetch_from_source(self, number: DialedNumber, deadline: float) -> Persona | None:
        try:
            async with asyncio.timeout_at(deadline):  # hard stop, whatever the source does
                persona = await self.source.fetch(number, deadline)
        except TimeoutError as exc:
            raise SourceUnavailable("deadline", f"source fetch for {number.e164} hit the deadline") from exc
        except SourceUnavailable as exc:
            # Running out of the caller's budget says nothing about the CRM's health.
            if exc.kind not in ("deadline", "timeout") or asyncio.get_running_loop().time() < deadline - 0.005:
                await self._report_health(False)
            raise
        except Exception as exc:
            # A source bug or a failure mode it did not foresee: still a failed source,
            # so stale/default apply and health says so, instead of gRPC UNKNOWN.
            logger.exception("persona source failed unexpectedly for %s", number.e164)
            self.metrics.crm_errors.labels("error").inc()
            await self._report_health(False)
            raise SourceUnavailable("error", f"source failed for {number.e164}: {type(exc).__name__}: {exc}") from exc
        await self._report_health(True)
        entry = CacheEntry(persona=persona, fetched_at=self._clock())
        if persona is None:
            await self.cache.set(number.e164, entry, self.policy.negative_ttl_seconds)
        else:
            keep = max(self.policy.ttl_seconds, self.policy.max_stale_seconds)
            await self.cache.set(number.e164, entry, keep)
        return persona

    async def _report_health(self, healthy: bool) -> None:
        if self._report is not None:
            await self._report(healthy)
