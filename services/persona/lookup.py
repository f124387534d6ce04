"""The persona lookup: normalise → cache → (stale-while-revalidate) → one coalesced
source fetch, guarded by the CRM breaker and the new-number limit → last known good →
default. Pure asyncio + protobuf: no httpx, no grpc (the source and the cache are
injected; the gRPC layer maps the errors in errors.py to status codes)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from friday.persona.v1.campaign_pb2 import CallAction, Campaign, CampaignSelection
from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from friday.persona.v1.persona_service_pb2 import DefaultReason
from services.common.circuit_breaker import BreakerPermit, BreakerState, CircuitBreaker
from services.common.default_persona import default_persona
from services.common.leases import TokenLeases
from services.grpc_runtime.deadlines import less_answer_margin
from services.grpc_runtime.metrics import LabelledChildren
from services.persona.admission import NewNumberAdmission
from services.persona.cache import PersonaCache
from services.persona.cache_entry import CacheEntry, CachePolicy, answer_version
from services.persona.campaign_selection import SELECTION_RULE_LABELS, choose_variant, read_caller
from services.persona.changes import Change, ChangeFeed
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
from services.persona.sources import PersonaSourceBackend, SourceAnswer, SourceUnavailable

logger = logging.getLogger(__name__)

# Longer than any phone number in any form a carrier sends (a SIP user part may carry one).
MAX_CALLER_NUMBER_LENGTH = 64
# At most one "refusing new numbers" warning this often; the metric counts every one.
_REFUSAL_LOG_INTERVAL_SECONDS = 10.0
_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5  # consecutive failed fetches that open it; 0 = never
    cooldown_seconds: float = 5.0


class Resolution(NamedTuple):
    """What one call gets: a persona (a campaign answer already reduced to the
    variant this call chose), and with a campaign the selection and any action.
    A tuple, like _Found: two are made on every call, and a frozen dataclass's
    field-by-field __init__ cost more than the rest of a cache hit's bookkeeping."""

    persona: Persona
    source: PersonaSource.ValueType
    normalized_number: str
    age_seconds: float = 0.0
    default_reason: DefaultReason.ValueType = DefaultReason.DEFAULT_REASON_UNSPECIFIED
    selection: CampaignSelection | None = None
    action: CallAction | None = None


@dataclass(frozen=True)
class Invalidation:
    normalized_number: str
    removed: bool = False  # a cache held something for the number
    refetched: bool = False
    version: str = ""  # what the source answers now ("" for none, or when not refetched)
    note: str = ""  # why nothing was removed or refetched


@dataclass(frozen=True)
class Refreshed:
    normalized_number: str
    version: str  # "" when the source has no persona for the number
    changed: bool  # differs from what was cached before


class _Found(NamedTuple):
    """What the source (or a cache of it) answered for the number, before selection."""

    answer: SourceAnswer
    source: PersonaSource.ValueType
    normalized_number: str
    age_seconds: float = 0.0
    default_reason: DefaultReason.ValueType = DefaultReason.DEFAULT_REASON_UNSPECIFIED


# The warm paths' sources, read once: an enum wrapper's attribute is a Python-level lookup.
_FROM_CACHE = PersonaSource.PERSONA_SOURCE_CACHE
_FROM_FILE = PersonaSource.PERSONA_SOURCE_STATIC_FILE

# The `why` label of persona_default_served_total for each reason.
_DEFAULT_LABELS: dict[DefaultReason.ValueType, str] = {
    DefaultReason.DEFAULT_REASON_NOT_FOUND: "not_found",
    DefaultReason.DEFAULT_REASON_SOURCE_UNAVAILABLE: "unavailable",
    DefaultReason.DEFAULT_REASON_DEADLINE_EXCEEDED: "deadline",
    DefaultReason.DEFAULT_REASON_SOURCE_INVALID: "invalid",
    DefaultReason.DEFAULT_REASON_NO_VARIANT: "no_variant",
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
        feed: ChangeFeed | None = None,
    ) -> None:
        self.source = source
        self.cache = cache
        self.metrics = metrics
        # persona_campaign_selections_total{rule}: counted on every campaign call.
        self._selections = LabelledChildren(metrics.campaign_selections)
        self.default_region = default_region
        self.policy = policy = policy or CachePolicy()
        # Read on every cache hit; the policy is frozen, so they are worked out once.
        self._fresh_seconds = policy.ttl_seconds
        self._refresh_ahead_after = policy.refresh_ahead_after()
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
            on_change=self._publish if feed is not None else None,
        )
        self.feed = feed
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

    async def get(
        self,
        text: str,
        *,
        allow_default: bool,
        budget_seconds: float,
        peer: str | Callable[[], str] = "",
        caller_number: str = "",
        at: datetime.datetime | None = None,
    ) -> Resolution:
        """The persona for a call to dialed number `text`, within `budget_seconds`
        (the caller's budget already less the time it needs to send the answer).
        `peer` names who asks (the peer's host), for the new-number limit: a string, or
        a function giving it, called only when a new number needs it. When the
        number's answer is a campaign, `caller_number` and `at` (default: now) choose
        the variant; selection runs after the cache, per call."""
        number = self.parse(text)
        if len(caller_number) > MAX_CALLER_NUMBER_LENGTH or not caller_number.isprintable():
            raise InvalidNumberError(
                f"caller_number must be a phone number of at most {MAX_CALLER_NUMBER_LENGTH} printable characters"
            )
        found = await self._find(number, allow_default=allow_default, budget_seconds=budget_seconds, peer=peer)
        if not isinstance(found.answer, Campaign):
            return Resolution(
                found.answer, found.source, found.normalized_number, found.age_seconds, found.default_reason
            )
        return self._choose(found, found.answer, caller_number, at, allow_default)

    def _choose(
        self, found: _Found, campaign: Campaign, caller_number: str, at: datetime.datetime | None, allow_default: bool
    ) -> Resolution:
        """The campaign's variant for this call (rules in campaign.proto's order)."""
        key = found.normalized_number
        when = at or datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        choice = choose_variant(campaign, read_caller(caller_number, self.default_region), when)
        selection = CampaignSelection(campaign_id=campaign.campaign_id, campaign_version=campaign.version)
        if choice is None:
            self._selections("none").inc()
            if not allow_default:
                raise PersonaNotFoundError(f"campaign {campaign.campaign_id!r} chose no variant for {key}", key)
            reason = DefaultReason.DEFAULT_REASON_NO_VARIANT
            self.metrics.default_serves.labels(_DEFAULT_LABELS[reason]).inc()
            return Resolution(
                self._default_persona(),
                PersonaSource.PERSONA_SOURCE_DEFAULT,
                key,
                default_reason=reason,
                selection=selection,
            )
        variant, rule = choice
        selection.variant_id, selection.rule = variant.variant_id, rule
        self._selections(SELECTION_RULE_LABELS[rule]).inc()
        if variant.HasField("action"):
            # The campaign gives an action no persona of its own: it speaks in the default voice.
            return Resolution(
                self._default_persona(),
                found.source,
                key,
                found.age_seconds,
                selection=selection,
                action=variant.action,
            )
        return Resolution(variant.persona, found.source, key, found.age_seconds, selection=selection)

    async def _find(
        self, number: DialedNumber, *, allow_default: bool, budget_seconds: float, peer: str | Callable[[], str]
    ) -> _Found:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_seconds

        if not self.source.cacheable:  # the persona file is already in memory
            answer = await self.source.fetch(number, deadline)
            if answer is not None:
                return _Found(answer, _FROM_FILE, number.e164)
            return self._not_found(number, allow_default)

        key = number.e164
        entry = await self.cache.get(key)
        now = self._clock()
        if entry is not None:
            age = entry.age(now)
            if entry.answer is not None and age < self._fresh_seconds:
                # The warm path, every call of a known number: kept to what it must do.
                self.metrics.cache_hits.inc()
                self.last_known_good.remember(key, entry)
                if age >= self._refresh_ahead_after:
                    # Refresh-ahead: a number still being called near the end of its TTL is
                    # fetched again in the background, so its callers never see it expire.
                    self._revalidate(number)
                return _Found(entry.answer, _FROM_CACHE, key, age)
            if entry.answer is None and age < self.policy.negative_ttl_seconds:
                self.metrics.cache_hits.inc()
                return self._not_found(number, allow_default, cached=True)
        self.metrics.cache_misses.inc()

        if entry is not None and entry.answer is not None and age <= self.policy.max_stale_seconds:
            # Stale-while-revalidate: this caller gets the stale copy at once, the next
            # ones the refreshed copy; nobody waits for the CRM (or for a CRM that is down).
            self._revalidate(number)
            self.metrics.stale_serves.inc()
            return _Found(entry.answer, PersonaSource.PERSONA_SOURCE_STALE_CACHE, key, age)

        task = self._inflight.get(key)
        if task is None:
            permit = self.breaker.acquire()
            if permit is None:
                self.metrics.breaker_short_circuits.inc()
                return self._source_failed(
                    number, allow_default, SourceUnavailable("breaker_open", "the CRM breaker is open"), deadline
                )
            if entry is None and self.last_known_good.get(key, now) is None:
                caller = peer if isinstance(peer, str) else peer()
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
        if fetched.answer is None:
            return self._not_found(number, allow_default)
        return _Found(fetched.answer, PersonaSource.PERSONA_SOURCE_CRM, key)

    async def invalidate(self, text: str, *, budget_seconds: float) -> Invalidation:
        """Drops what is cached for the number and fetches it again at once (within
        `budget_seconds`): the cache then holds what the source says now, and a new
        version reaches WatchPersonas subscribers. When the source cannot answer in
        time, the number is left uncached, so the next lookup asks it."""
        number = self.parse(text)
        key = number.e164
        if not self.source.cacheable:
            return Invalidation(key, note="the persona file source keeps no cache; it answers from the file")
        held = await self.cache.get(key) is not None or self.last_known_good.get(key, self._clock()) is not None
        try:
            refreshed = await self.refresh(number, budget_seconds=budget_seconds)
        except (CrmUnavailableError, LookupDeadlineError) as exc:
            removed = await self.cache.delete(key)
            removed = self.last_known_good.forget(key) or removed or held
            logger.info("invalidated %s (removed=%s); not refetched: %s", key, removed, exc)
            return Invalidation(key, removed=removed, note=f"dropped, not refetched: {exc}")
        logger.info("invalidated %s and refetched it (version %s)", key, refreshed.version or "none")
        return Invalidation(key, removed=held, refetched=True, version=refreshed.version)

    async def refresh(self, number: DialedNumber, *, budget_seconds: float) -> Refreshed:
        """Fetches `number` from the source now, whatever the cache holds (the source
        is known to have changed). A fetch already running may predate the change, so
        it is waited for and a new one started. Raises CrmUnavailableError or
        LookupDeadlineError when the source cannot answer in time."""
        key = number.e164
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_seconds
        previous = await self.cache.get(key)
        asked_at = self._clock()
        running = self._inflight.get(key)
        if running is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(running), max(0.0, deadline - loop.time()))
        permit = self.breaker.acquire()
        if permit is None:
            self.metrics.breaker_short_circuits.inc()
            raise CrmUnavailableError(f"the CRM breaker is open; {key} not refetched", key)
        task = self._start_fetch(number, permit, newer_than=asked_at)
        try:
            entry = await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - loop.time()))
        except TimeoutError as exc:
            raise LookupDeadlineError(f"ran out of time refetching {key}", key) from exc
        except SourceUnavailable as exc:
            raise CrmUnavailableError(f"CRM unavailable for {key}: {exc}", key) from exc
        version = answer_version(entry.answer)
        return Refreshed(key, version, changed=previous is None or answer_version(previous.answer) != version)

    # -- answers without a fresh persona ----------------------------------------------------

    def _source_failed(
        self, number: DialedNumber, allow_default: bool, exc: SourceUnavailable, deadline: float
    ) -> _Found:
        """The CRM could not give this lookup a persona: the last known good one, else the
        default or an error that says why."""
        key = number.e164
        stale = self.last_known_good.get(key, self._clock())
        if stale is not None:
            assert stale.answer is not None
            self.metrics.stale_serves.inc()
            age = stale.age(self._clock())
            logger.warning("serving the last known persona for %s (age %.0fs): %s", key, age, exc)
            return _Found(stale.answer, PersonaSource.PERSONA_SOURCE_STALE_CACHE, key, age)
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

    def _rate_limited(self, number: DialedNumber, allow_default: bool, limit: str, caller: str) -> _Found:
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

    def _not_found(self, number: DialedNumber, allow_default: bool, *, cached: bool = False) -> _Found:
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
    ) -> _Found:
        if not allow_default:
            raise error
        self.metrics.default_serves.labels(label or _DEFAULT_LABELS[reason]).inc()
        return _Found(self._default_persona(), PersonaSource.PERSONA_SOURCE_DEFAULT, number.e164, default_reason=reason)

    def _default_persona(self) -> Persona:
        return self.source.default_persona() or default_persona()

    # -- fetches ----------------------------------------------------------------------------

    def _start_fetch(
        self, number: DialedNumber, permit: BreakerPermit, *, newer_than: float | None = None
    ) -> asyncio.Task[CacheEntry]:
        """One source fetch per number at a time; everyone else joins it (each waiting
        only as long as its own budget allows).

        The fetch runs to a service-level deadline (a full request budget from its
        start), not to the deadline of the caller that started it: otherwise a caller
        with 100 ms would doom a call with 900 ms that joined 10 ms later. A caller that
        gives up leaves the fetch running for the others (and the cache)."""
        key = number.e164
        fetch_deadline = asyncio.get_running_loop().time() + less_answer_margin(self.fetch_budget_seconds)
        task = asyncio.create_task(
            self._run_fetch(number, fetch_deadline, permit, newer_than), name=f"persona-fetch:{key}"
        )
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
            self.metrics.background_refreshes.labels("not_found" if task.result().negative else "ok").inc()
        else:
            self.metrics.background_refreshes.labels("failed").inc()
            logger.warning("background refresh of %s failed; the stale copy stays: %s", key, exc)

    async def _run_fetch(
        self, number: DialedNumber, deadline: float, permit: BreakerPermit, newer_than: float | None = None
    ) -> CacheEntry:
        try:
            entry = await self.fetcher.fetch(number, deadline, permit, newer_than=newer_than)
        finally:
            permit.release()  # no-op once the source call reported its outcome
            await self._sync_breaker_health()
        # Whatever a fetch brings is served (to its waiters, or to the next caller after a
        # stale answer), so it is the last known good persona; "none" ends that.
        if entry.answer is None:
            self.last_known_good.forget(number.e164)
        else:
            self.last_known_good.remember(number.e164, entry)
        return entry

    async def _publish(self, change: Change) -> None:
        assert self.feed is not None
        self.metrics.changes_published.inc()
        logger.info(
            "persona of %s changed: %s -> %s",
            change.number,
            change.previous_version or "none",
            change.version or "none",
        )
        await self.feed.publish(change)

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
