"""Persona changes, published once and delivered to every WatchPersonas subscriber.

A change is seen by the replica whose fetch brought a new version (a notification,
an invalidation, a refresh). It is published to a `ChangeLog` — in-process, or a
Redis stream that every replica sharing the Redis reads — and each replica fans the
log out to its own subscribers. Every change has a token (its place in the log): a
subscriber that reconnects with the last token it saw gets everything after it, or a
resync marker when the log no longer reaches back that far (or the token is from
another log, e.g. before a restart of an in-process log).

A subscriber has a bounded buffer; one that falls behind is cut off (its stream ends
with a clear status) instead of holding memory or slowing the publisher. Pure asyncio:
no grpc here (the servicer maps this to the stream and its statuses)."""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.persona.sources import SourceAnswer

logger = logging.getLogger(__name__)

DEFAULT_BUFFER = 256  # events a subscriber may fall behind before it is cut off
DEFAULT_HISTORY = 10_000  # changes a log keeps for resuming subscribers


@dataclass(frozen=True)
class Change:
    number: str  # E.164
    version: str  # "" when removed
    previous_version: str  # "" when the number was not known before
    answer: SourceAnswer | None  # None when removed
    changed_at: float  # wall clock, by the replica that saw it
    token: str = ""  # set by the log

    @property
    def removed(self) -> bool:
        return self.answer is None


@dataclass(frozen=True)
class Resync:
    """Changes since the subscriber's resume token may have been missed."""

    token: str


@dataclass(frozen=True)
class KeepAlive:
    token: str  # the last token the subscriber was given (so a resume still works)


Event = Change | Resync | KeepAlive


class ChangeLog(Protocol):
    async def append(self, change: Change) -> None:
        """Publish `change`; every replica's `on_change` hears it (with its token)."""

    async def since(self, token: str) -> list[Change] | None:
        """The changes after `token`, oldest first; None when the log no longer reaches
        back to it (or never held it): the subscriber must resync."""

    def latest_token(self) -> str:
        """The token of the newest change this replica has delivered ("" if none)."""

    def newer(self, token: str, than: str) -> bool:
        """Whether `token` comes after `than` in this log."""

    async def aclose(self) -> None: ...


class SubscriberTooSlow(Exception):
    """The subscriber's buffer filled up: it is cut off."""


@dataclass(eq=False)
class Subscription:
    numbers: frozenset[str] | None  # None: every number
    buffer: int
    # Called once when the subscriber is cut off: its consumer may be blocked writing to
    # a peer that does not read, and must be woken (the servicer cancels its write).
    on_overflow: Callable[[], None] = lambda: None
    _queue: asyncio.Queue[Change] = field(init=False)
    overflowed: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.buffer)

    def wants(self, change: Change) -> bool:
        return self.numbers is None or change.number in self.numbers

    def offer(self, change: Change) -> None:
        """Never blocks the publisher: a full buffer cuts the subscriber off."""
        if self.closed or not self.wants(change):
            return
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = True
            self.closed = True
            self.on_overflow()


class ChangeFeed:
    def __init__(
        self,
        make_log: Callable[[Callable[[Change], None]], ChangeLog],
        *,
        buffer: int = DEFAULT_BUFFER,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        """`make_log(deliver)` builds the log that calls `deliver` for every change."""
        self.log = make_log(self.deliver)
        self.buffer = buffer
        self._subscribers: set[Subscription] = set()
        self._on_drop = on_drop or (lambda: None)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def publish(self, change: Change) -> None:
        await self.log.append(change)

    def deliver(self, change: Change) -> None:
        """Called by the log for every change (from this replica or another)."""
        for subscription in list(self._subscribers):
            subscription.offer(change)
            if subscription.overflowed and subscription in self._subscribers:
                self._subscribers.discard(subscription)
                self._on_drop()
                logger.warning("a WatchPersonas subscriber fell %d changes behind; cutting it off", subscription.buffer)

    async def watch(
        self,
        numbers: frozenset[str] | None,
        resume_token: str,
        *,
        keepalive_seconds: float,
        on_overflow: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[Event]:
        """The subscriber's events: what it missed since `resume_token` (or a resync),
        then each change as it is delivered, with a keep-alive after every
        `keepalive_seconds` of quiet. Raises SubscriberTooSlow when cut off."""
        subscription = Subscription(numbers, self.buffer, on_overflow)
        # Registered before the backlog is read, so nothing falls between the two;
        # what both hold is skipped by token below.
        self._subscribers.add(subscription)
        try:
            last = resume_token
            if resume_token:
                missed = await self.log.since(resume_token)
                if missed is None:
                    last = self.log.latest_token()
                    yield Resync(last)
                else:
                    for change in missed:
                        last = change.token
                        if subscription.wants(change):
                            yield change
            else:
                last = self.log.latest_token()
            # First a keep-alive: the subscriber knows it is registered, and that every change
            # from here on reaches it (what happened before, it can read once, without a race).
            yield KeepAlive(last)
            while True:
                if subscription.overflowed:
                    raise SubscriberTooSlow(f"fell more than {self.buffer} changes behind")
                try:
                    change = await asyncio.wait_for(subscription._queue.get(), keepalive_seconds)
                except TimeoutError:
                    if subscription.overflowed:
                        continue
                    yield KeepAlive(last)
                    continue
                if last and not self.log.newer(change.token, last):
                    continue  # already sent from the backlog
                last = change.token
                yield change
        finally:
            subscription.closed = True
            self._subscribers.discard(subscription)


class InMemoryChangeLog:
    """One replica's log (no Redis): tokens are `<log id>.<sequence>`, so a token from
    before a restart is recognised as foreign and answered with a resync."""

    def __init__(self, deliver: Callable[[Change], None], *, history: int = DEFAULT_HISTORY) -> None:
        self._deliver = deliver
        self._id = secrets.token_hex(4)
        self._sequence = 0
        self._history: collections.deque[Change] = collections.deque(maxlen=history)

    async def append(self, change: Change) -> None:
        self._sequence += 1
        stamped = Change(
            change.number,
            change.version,
            change.previous_version,
            change.answer,
            change.changed_at,
            token=f"{self._id}.{self._sequence}",
        )
        self._history.append(stamped)
        self._deliver(stamped)

    async def since(self, token: str) -> list[Change] | None:
        sequence = self._sequence_of(token)
        if sequence is None or sequence > self._sequence:
            return None
        oldest = self._sequence - len(self._history)  # the newest sequence no longer held
        if sequence < oldest:
            return None
        return [c for c in self._history if (self._sequence_of(c.token) or 0) > sequence]

    def latest_token(self) -> str:
        return f"{self._id}.{self._sequence}"

    def newer(self, token: str, than: str) -> bool:
        return (self._sequence_of(token) or 0) > (self._sequence_of(than) or 0)

    def _sequence_of(self, token: str) -> int | None:
        log_id, _, sequence = token.partition(".")
        return int(sequence) if log_id == self._id and sequence.isdigit() else None

    async def aclose(self) -> None:
        return None
