"""The persona lookup: normalise → cache → (stale-while-revalidate) → one coalesced
source fetch, guarded by the CRM breaker and the new-number limit → last known good →
default. Pure asyncio + protobuf: no httpx, no grpc (the source and the cache are
injected; the gRPC layer maps the errors in errors.py to status codes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.common.circuit_breaker import BreakerPermit, BreakerState, CircuitBreaker
from services.common.default_persona import default_persona
from services.common.leases import TokenLeases
from services.grpc_runtime.deadlines import less_answer_margin
from services.persona.admission import NewNumberAdmission
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry, CachePolicy
from services.persona.errors import (
    CrmUnavailableError,
    InvalidNumberError,
    LookupDeadlineError,
    NewNumberRateLimitedError,
    PersonaNotFoundError,
)
from services.persona.fetcher import SourceFetcher
from services.persona.last_known_good import LastKnownGood
from services.persona.metrics import PersonaMetrics
from services.persona.numbers import DialedNumber, InvalidPhoneNumber, parse_dialed_number
from services.persona.sources import PersonaSourceBackend, SourceUnavailable

logger = logging.getLogger(__name__)

# At most one "refusing new numbers" warning this often; the metric counts every one.
_REFUSAL_LOG_INTERVAL_SECONDS = 10.0
_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5  # consecutive failed fetches that open it; 0 = never
    cooldown_seconds: float = 5.0


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
        policy: CachePolicy | None = None,
        breaker: BreakerPolicy = BreakerPolicy(),
        admission: NewNumberAdmission | None = None,
        report_source_health: Callable[[bool], Awaitable[None]] | None = None,
        report_breaker_health: Callable[[bool], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        lease: TokenLeases | None = None,
        lease_poll_seconds: float = 0.02,
        fetch_budget_seconds: float = 3.0,
    ) -> None:
        self.source = source
        self.cache = cache
        self.metrics = metrics
        self.default_region = default_region
        self.policy = policy = policy or CachePolicy()
        self._report_breaker = report_breaker_health
        self._clock = clock
        self.fetcher = SourceFetcher(
            source,
            cache,
            metrics,
            policy,
            report_source_health=report_source_health,
            clock=clock,
            lease=lease,
            lease_poll_seconds=lease_poll_seconds,
        )
        self._inflight: dict[str, asyncio.Task[CacheEntry]] = {}
        # How long a shared source fetch may run: the service's own cap on a request,
        # not the budget of whichever caller happened to start it (see _start_fetch).
        self.fetch_budget_seconds = fetch_budget_seconds
        self.last_known_good = LastKnownGood(policy.last_known_good_max_entries, policy.max_stale_seconds)
        self.breaker = CircuitBreaker(breaker.failures, breaker.cooldown_seconds, on_transition=self._breaker_moved)
        self._breaker_reported_closed = True
        self.admission = admission
        self._refusals_unlogged = 0
        self._next_refusal_log = 0.0

    def parse(self, text: str) -> DialedNumber:
        try:
            return parse_dialed_number(text, self.default_region)
        except InvalidPhoneNumber as exc:
            raise InvalidNumberError(str(exc)) from exc

    async def get(self, text: str, *, allow_default: bool, budget_seconds: float, caller: str = "") -> Resolution:
        """The persona for dialed number `text` within `budget_seconds` (the caller's
        budget already less the time it needs to send the answer). `caller` names who
        asks (the peer's host), for the new-number limit."""
        number = self.parse(text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_seconds

        if not self.source.cacheable:  # the persona file is already in memory
            persona = await self.source.fetch(number, deadline)
            if persona is not None:
                return Resolution(persona, PersonaSource.PERSONA_SOURCE_STATIC_FILE, number.e164)
            return self._not_found(number, allow_default)

        key = number.e164
        entry = await self.cache.get(key)
        now = self._clock()
        if entry is not None and entry.age(now) < self.policy.fresh_for(entry):
            self.metrics.cache_hits.inc()
            if entry.persona is None:
                return self._not_found(number, allow_default, cached=True)
            self.last_known_good.remember(key, entry)
            return Resolution(entry.persona, PersonaSource.PERSONA_SOURCE_CACHE, key, entry.age(now))
        self.metrics.cache_misses.inc()

        if entry is not None and entry.persona is not None and entry.age(now) <= self.policy.max_stale_seconds:
            # Stale-while-revalidate: this caller gets the stale copy at once, the next
            # ones the refreshed copy; nobody waits for the CRM (or for a CRM that is down).
            self._revalidate(number)
            self.metrics.stale_serves.inc()
            return Resolution(entry.persona, PersonaSource.PERSONA_SOURCE_STALE_CACHE, key, entry.age(now))

        task = self._inflight.get(key)
        if task is None:
            permit = self.breaker.acquire()
            if permit is None:
                self.metrics.breaker_short_circuits.inc()
                return self._source_failed(
                    number, allow_default, SourceUnavailable("breaker_open", "the CRM breaker is open"), deadline
                )
            if entry is None and self.last_known_good.get(key, now) is None:
                refused = self.admission.admit(caller) if self.admission is not None else None
                if refused is not None:
                    permit.release()
                    return self._rate_limited(number, allow_default, refused, caller)
            task = self._start_fetch(number, permit)
        else:
            self.metrics.coalesced.inc()

        remaining = deadline - loop.time()
        try:
            # shield: a caller that gives up must not cancel the fetch the others wait on.
            fetched = await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, remaining))
        except TimeoutError:
            error = SourceUnavailable("deadline", f"no answer from the source within the budget for {key}")
            return self._source_failed(number, allow_default, error, deadline)
        except SourceUnavailable as exc:
            return self._source_failed(number, allow_default, exc, deadline)
        if fetched.persona is None:
            return self._not_found(number, allow_default)
        return Resolution(fetched.persona, PersonaSource.PERSONA_SOURCE_CRM, key)

    async def invalidate(self, text: str) -> tuple[str, bool]:
        number = self.parse(text)
        removed = await self.cache.delete(number.e164)
        removed = self.last_known_good.forget(number.e164) or removed
        logger.info("invalidated %s (removed=%s)", number.e164, removed)
        return number.e164, removed

    # -- answers without a fresh persona ----------------------------------------------------

    def _source_failed(
        self, number: DialedNumber, allow_default: bool, exc: SourceUnavailable, deadline: float
    ) -> Resolution:
        """The CRM could not give this lookup a persona: the last known good one, else the
        default or an error that says why."""
        key = number.e164
        stale = self.last_known_good.get(key, self._clock())
        if stale is not None:
            assert stale.persona is not None
            self.metrics.stale_serves.inc()
            age = stale.age(self._clock())
            logger.warning("serving the last known persona for %s (age %.0fs): %s", key, age, exc)
            return Resolution(stale.persona, PersonaSource.PERSONA_SOURCE_STALE_CACHE, key, age)
        error: CrmUnavailableError | LookupDeadlineError
        out_of_time = exc.kind == "deadline" or asyncio.get_running_loop().time() >= deadline - 0.005
        if out_of_time:
            error = LookupDeadlineError(f"ran out of time looking up {key}: {exc}", key)
            reason = DefaultReason.DEFAULT_REASON_DEADLINE_EXCEEDED
        else:
            error = CrmUnavailableError(f"CRM unavailable for {key}: {exc}", key)
            reason = (
                DefaultReason.DEFAULT_REASON_SOURCE_INVALID
                if exc.kind == "malformed"
                else DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE
            )
        return self._default_or(error, number, reason, allow_default)

    def _rate_limited(self, number: DialedNumber, allow_default: bool, limit: str, caller: str) -> Resolution:
        self.metrics.new_number_refusals.labels(limit).inc()
        self._log_refusal(limit, caller)
        error = NewNumberRateLimitedError(
            f"too many never-seen numbers ({limit} limit); not asking the CRM for {number.e164}",
            number.e164,
            limit=limit,
        )
        # As if the CRM were unavailable for this number: that is what the caller may rely on.
        return self._default_or(
            error, number, DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE, allow_default, label="rate_limited"
        )

    def _log_refusal(self, limit: str, caller: str) -> None:
        self._refusals_unlogged += 1
        now = time.monotonic()
        if now >= self._next_refusal_log:
            logger.warning(
                "new-number limit (%s) refused %d CRM fetch(es), the last from %s; answering as if the CRM"
                " were unavailable (persona_new_number_fetches_refused_total counts them all)",
                limit,
                self._refusals_unlogged,
                caller or "an unknown peer",
            )
            self._refusals_unlogged = 0
            self._next_refusal_log = now + _REFUSAL_LOG_INTERVAL_SECONDS

    def _not_found(self, number: DialedNumber, allow_default: bool, *, cached: bool = False) -> Resolution:
        error = PersonaNotFoundError(f"no persona for {number.e164}{' (cached)' if cached else ''}", number.e164)
        return self._default_or(error, number, DefaultReason.DEFAULT_REASON_NOT_FOUND, allow_default)

    def _default_or(
        self,
        error: Exception,
        number: DialedNumber,
        reason: DefaultReason.ValueType,
        allow_default: bool,
        *,
        label: str | None = None,
    ) -> Resolution:
        if not allow_default:
            raise error
        self.metrics.default_serves.labels(label or _DEFAULT_LABELS[reason]).inc()
        persona = self.source.default_persona() or default_persona()
        return Resolution(persona, PersonaSource.PERSONA_SOURCE_DEFAULT, number.e164, default_reason=reason)

    # -- fetches ----------------------------------------------------------------------------

    def _start_fetch(self, number: DialedNumber, permit: BreakerPermit) -> asyncio.Task[CacheEntry]:
        """One source fetch per number at a time; everyone else joins it (each waiting
        only as long as its own budget allows).

        The fetch runs to a service-level deadline (a full request budget from its
        start), not to the deadline of the caller that started it: otherwise a caller
        with 100 ms would doom a call with 900 ms that joined 10 ms later. A caller that
        gives up leaves the fetch running for the others (and the cache)."""
        key = number.e164
        fetch_deadline = asyncio.get_running_loop().time() + less_answer_margin(self.fetch_budget_seconds)
        task = asyncio.create_task(self._run_fetch(number, fetch_deadline, permit), name=f"persona-fetch:{key}")
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._fetch_done(key, done))
        return task

    def _revalidate(self, number: DialedNumber) -> None:
        """Refreshes a stale entry in the background, unless a fetch already runs (then
        that is the refresh) or the breaker is open (the stale copy is all there is)."""
        if number.e164 in self._inflight:
            return
        permit = self.breaker.acquire()
        if permit is None:
            self.metrics.background_refreshes.labels("skipped").inc()
            return
        self._start_fetch(number, permit).add_done_callback(lambda done: self._refreshed(number.e164, done))

    def _refreshed(self, key: str, task: asyncio.Task[CacheEntry]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.metrics.background_refreshes.labels("ok" if task.result().persona else "not_found").inc()
        else:
            self.metrics.background_refreshes.labels("failed").inc()
            logger.warning("background refresh of %s failed; the stale copy stays: %s", key, exc)

    async def _run_fetch(self, number: DialedNumber, deadline: float, permit: BreakerPermit) -> CacheEntry:
        try:
            entry = await self.fetcher.fetch(number, deadline, permit)
        finally:
            permit.release()  # no-op once the source call reported its outcome
            await self._sync_breaker_health()
        # Whatever a fetch brings is served (to its waiters, or to the next caller after a
        # stale answer), so it is the last known good persona; "none" ends that.
        if entry.persona is None:
            self.last_known_good.forget(number.e164)
        else:
            self.last_known_good.remember(number.e164, entry)
        return entry

    async def aclose(self) -> None:
        """Cancels the fetches nobody waits for any more (at shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Waits for the fetches under way, background refreshes included."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    def _fetch_done(self, key: str, task: asyncio.Task[CacheEntry]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an abandoned failure is not logged as "never retrieved"

    # -- health and the breaker -------------------------------------------------------------

    def _breaker_moved(self, old: BreakerState, new: BreakerState) -> None:
        self.metrics.breaker_state.set(_BREAKER_GAUGE[new])
        self.metrics.breaker_transitions.labels(new.value).inc()
        if new is BreakerState.OPEN:
            logger.warning(
                "CRM breaker open (%s): answering from the cache without asking the CRM for %.1fs, then one"
                " fetch tests it",
                "the test fetch failed" if old is BreakerState.HALF_OPEN else "consecutive CRM failures",
                self.breaker.cooldown_seconds,
            )
        elif new is BreakerState.CLOSED:
            logger.info("CRM breaker closed: the CRM answers again")

    async def _sync_breaker_health(self) -> None:
        closed = self.breaker.state is BreakerState.CLOSED
        if closed != self._breaker_reported_closed:
            self._breaker_reported_closed = closed
            if self._report_breaker is not None:
                await self._report_breaker(closed)
