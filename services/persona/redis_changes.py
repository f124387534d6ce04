"""The change log shared by replicas: a Redis stream (`<prefix>changes`) on the Redis
they already share. The replica that sees a change XADDs it (the stream is capped at
about `history` entries); every replica runs one reader (XREAD BLOCK from the last id
it delivered) that hands each entry to its own subscribers — its own changes
included, so there is one delivery path. A token is the stream entry id, which
orders changes across replicas and lets a subscriber resume on any of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from friday.persona.v1.campaign_pb2 import Campaign
from friday.persona.v1.persona_pb2 import Persona
from services.common.background_tasks import cancel_and_wait
from services.persona.changes import DEFAULT_HISTORY, Change
from services.persona.sources import SourceAnswer

logger = logging.getLogger(__name__)

_BLOCK_MILLISECONDS = 1_000
# The reader's client must wait out a block: this is its read timeout.
READER_TIMEOUT_SECONDS = _BLOCK_MILLISECONDS / 1000 + 2.0
_RETRY_SECONDS = 1.0


@dataclass(slots=True, eq=False)
class RedisChangeLog:
    client: redis.Redis
    # XREAD BLOCK holds its connection for up to a second: a client of its own, with a
    # read timeout longer than the block (the shared client's is a fraction of a call).
    reader: redis.Redis
    _: KW_ONLY
    key: str
    deliver: Callable[[Change], None]
    history: int = DEFAULT_HISTORY
    count_error: Callable[[str], None] = lambda op: None
    _last: str = field(default="", init=False)
    _reader_task: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        """Begins reading after the newest entry (changes before now are for resuming only)."""
        try:
            newest: Any = await self.client.xrevrange(self.key, count=1)
            self._last = _id(newest[0][0]) if newest else "0-0"
        except (RedisError, OSError) as exc:
            self.count_error("read")
            logger.warning("persona change stream unreadable at start; reading from now on: %s", exc)
            self._last = "$"
        self._reader_task = asyncio.create_task(self._read(), name="persona-change-reader")

    async def append(self, change: Change) -> None:
        fields: dict[str, bytes | str] = {
            "number": change.number,
            "version": change.version,
            "previous": change.previous_version,
            "changed_at": repr(change.changed_at),
        }
        if isinstance(change.answer, Campaign):
            fields["campaign"] = change.answer.SerializeToString()
        elif change.answer is not None:
            fields["persona"] = change.answer.SerializeToString()
        try:
            await self.client.xadd(self.key, fields, maxlen=self.history, approximate=True)  # type: ignore[arg-type]
        except (RedisError, OSError) as exc:
            # The change itself is in the cache; only live subscribers miss the news.
            self.count_error("publish")
            logger.warning("could not publish the change of %s to the change stream: %s", change.number, exc)

    async def since(self, token: str) -> list[Change] | None:
        wanted = _order(token)
        if wanted is None:
            return None
        try:
            oldest: Any = await self.client.xrange(self.key, count=1)
            if not oldest or (_order(_id(oldest[0][0])) or (0, 0)) > wanted:
                # Trimmed past the token (or emptied): what happened in between is unknown.
                return None if token != self._last else []
            entries: Any = await self.client.xrange(self.key, min=f"({token}", count=self.history)
        except (RedisError, OSError) as exc:
            self.count_error("read")
            logger.warning("change stream unreadable for a resuming subscriber; it must resync: %s", exc)
            return None
        return [_change(entry_id, fields) for entry_id, fields in entries]

    def latest_token(self) -> str:
        return "" if self._last in ("$", "0-0") else self._last

    def newer(self, token: str, than: str) -> bool:
        a, b = _order(token), _order(than)
        return a is not None and (b is None or a > b)

    async def _read(self) -> None:
        while True:
            try:
                answer: Any = await self.reader.xread({self.key: self._last}, block=_BLOCK_MILLISECONDS, count=100)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.count_error("read")
                logger.warning("persona change stream unreadable; retrying in %.0fs: %s", _RETRY_SECONDS, exc)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    self._last = _id(entry_id)
                    try:
                        change = _change(entry_id, fields)
                    except (ValueError, KeyError) as exc:
                        logger.warning("unreadable change stream entry %s; skipped: %s", self._last, exc)
                        continue
                    self.deliver(change)

    async def aclose(self) -> None:
        await cancel_and_wait(self._reader_task)
        await self.reader.aclose()


def _id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _order(token: str) -> tuple[int, int] | None:
    ms, _, seq = token.partition("-")
    return (int(ms), int(seq)) if ms.isdigit() and seq.isdigit() else None


def _text(fields: dict[bytes, bytes], name: str) -> str:
    return fields.get(name.encode(), b"").decode()


def _change(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Change:
    answer: SourceAnswer | None = None
    if b"persona" in fields:
        answer = Persona.FromString(fields[b"persona"])
    elif b"campaign" in fields:
        answer = Campaign.FromString(fields[b"campaign"])
    return Change(
        number=_text(fields, "number"),
        version=_text(fields, "version"),
        previous_version=_text(fields, "previous"),
        answer=answer,
        changed_at=float(_text(fields, "changed_at") or 0),
        token=_id(entry_id),
    )
