"""One source fetch of one number, and what it leaves behind: asked of the CRM once
across replicas (the fetch lease in the Redis they share), stored in the cache, and
reported to health and to the CRM breaker. Which lookups may start a fetch, and what
they answer when it fails, is the lookup's business (lookup.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from services.common.circuit_breaker import BreakerPermit
from services.common.leases import LeaseStoreUnavailable, TokenLeases
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry, CachePolicy, answer_version
from services.persona.changes import Change
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber
from services.persona.sources import PersonaSourceBackend, SourceUnavailable

logger = logging.getLogger(__name__)

# A fetch lease outlives its holder's deadline by this much (time to store the result).
_LEASE_GRACE_SECONDS = 0.25
# Source failures that are answers, not an outage: the CRM is up (for the breaker).
_CRM_ANSWERED = frozenset({"malformed", "http_4xx"})
# Source failures that say nothing about the CRM (no attempt had time to run).
_NOT_THE_CRMS_FAULT = frozenset({"deadline"})


@dataclass(slots=True, eq=False)
class SourceFetcher:
    source: PersonaSourceBackend
    cache: PersonaCache
    metrics: PersonaMetrics
    policy: CachePolicy
    _: KW_ONLY
    report_source_health: Callable[[bool], Awaitable[None]] | None = None
    clock: Callable[[], float] = time.time
    # Single-flight across replicas: the replica holding a number's lease (in the
    # Redis they share) fetches it and stores it in the shared cache; the others
    # poll that cache until it appears or the lease is gone (holder failed or died).
    lease: TokenLeases | None = None
    lease_poll_seconds: float = 0.02
    # Told when a fetch from the source brings a version other than the one cached:
    # only the replica that asked the source publishes, so a change is published once.
    on_change: Callable[[Change], Awaitable[None]] | None = None
    _lease_down: bool = field(default=False, init=False, repr=False)

    async def fetch(
        self, number: DialedNumber, deadline: float, permit: BreakerPermit, *, newer_than: float | None = None
    ) -> CacheEntry:
        """The number's entry (persona or "none") fetched by the end of `deadline`
        (event-loop time), or SourceUnavailable. `permit` hears how the CRM did.
        `newer_than` (wall clock): an entry another replica stored before then does not
        count, because the source is known to have changed since (a forced refresh)."""
        # The lease lives in the cache's Redis: while the cache's breaker skips Redis, so do we.
        if self.lease is None or self.cache.breaker_open():
            return await self._fetch_from_source(number, deadline, permit)
        try:
            return await self._fetch_once_across_replicas(self.lease, number, deadline, permit, newer_than)
        except LeaseStoreUnavailable as exc:
            # Availability over dedupe: without the lease store each replica asks the CRM itself.
            if not self._lease_down:
                logger.warning("fetch lease unavailable; fetching without cross-replica coalescing: %s", exc)
            self._lease_down = True
            self.cache.shared_failed("lease", exc)
            return await self._fetch_from_source(number, deadline, permit)

    async def _fetch_once_across_replicas(
        self, lease: TokenLeases, number: DialedNumber, deadline: float, permit: BreakerPermit, newer_than: float | None
    ) -> CacheEntry:
        key = number.e164
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            token = await lease.try_acquire(key, remaining + _LEASE_GRACE_SECONDS)
            self._lease_down = False
            if token is not None:
                try:
                    # Another replica may have stored it between our cache read and our lease.
                    entry = await self._fresh_entry(key, newer_than)
                    if entry is not None:
                        return entry
                    return await self._fetch_from_source(number, deadline, permit)
                finally:
                    await lease.release(key, token)
            self.metrics.peer_waits.inc()
            entry = await self._await_peer_fetch(lease, key, deadline, newer_than)
            if entry is not None:
                return entry
            # The holder let go without storing anything (its fetch failed, or it died
            # and its lease expired): take over.
        raise SourceUnavailable("deadline", f"no answer for {key} within the budget (another replica was fetching)")

    async def _await_peer_fetch(
        self, lease: TokenLeases, key: str, deadline: float, newer_than: float | None
    ) -> CacheEntry | None:
        """Polls the shared cache while another replica holds the lease. The entry it
        stored, or None once the lease is free without one."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            entry = await self._fresh_entry(key, newer_than)
            if entry is not None:
                return entry
            if not await lease.is_held(key):
                # The holder stores before it releases: look once more, then give up waiting.
                return await self._fresh_entry(key, newer_than)
            await asyncio.sleep(min(self.lease_poll_seconds, max(0.0, deadline - loop.time())))
        return None

    async def _fresh_entry(self, key: str, newer_than: float | None = None) -> CacheEntry | None:
        entry = await self.cache.get(key)
        if entry is None or (newer_than is not None and entry.fetched_at < newer_than):
            return None
        if entry.age(self.clock()) < self.policy.fresh_for(entry):
            return entry
        return None

    async def _fetch_from_source(self, number: DialedNumber, deadline: float, permit: BreakerPermit) -> CacheEntry:
        # What was cached before (shared across replicas when Redis is), to tell a change.
        previous = await self.cache.get(number.e164) if self.on_change is not None else None
        try:
            async with asyncio.timeout_at(deadline):  # hard stop, whatever the source does
                answer = await self.source.fetch(number, deadline)
        except TimeoutError as exc:
            permit.failed()
            raise SourceUnavailable("deadline", f"source fetch for {number.e164} hit the deadline") from exc
        except SourceUnavailable as exc:
            if exc.kind in _CRM_ANSWERED:
                permit.succeeded()
            elif exc.kind not in _NOT_THE_CRMS_FAULT:
                permit.failed()
            # Running out of the caller's budget says nothing about the CRM's health.
            if exc.kind not in ("deadline", "timeout") or asyncio.get_running_loop().time() < deadline - 0.005:
                await self._report_health(False)
            raise
        except Exception as exc:
            # A source bug or a failure mode it did not foresee: still a failed source,
            # so stale/default apply and health says so, instead of gRPC UNKNOWN.
            logger.exception("persona source failed unexpectedly for %s", number.e164)
            self.metrics.crm_errors.labels("error").inc()
            permit.failed()
            await self._report_health(False)
            raise SourceUnavailable("error", f"source failed for {number.e164}: {type(exc).__name__}: {exc}") from exc
        permit.succeeded()
        await self._report_health(True)
        entry = CacheEntry(answer=answer, fetched_at=self.clock())
        await self.cache.set(number.e164, entry, self.policy.keep_for(entry))
        if self.on_change is not None and previous is not None:
            old, new = answer_version(previous.answer), answer_version(answer)
            if old != new:
                await self.on_change(Change(number.e164, new, old, answer, entry.fetched_at))
        return entry

    async def _report_health(self, healthy: bool) -> None:
        if self.report_source_health is not None:
            await self.report_source_health(healthy)
