"""Redis cache shared by replicas. One hash per number under `<prefix><e164>`:
`persona` = serialised Persona bytes or `campaign` = serialised Campaign bytes
(neither for a negative entry), `fetched_at`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import redis.asyncio as redis
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from friday.persona.v1.campaign_pb2 import Campaign
from friday.persona.v1.persona_pb2 import Persona
from services.persona.cache_entry import CacheEntry, CacheUnavailable
from services.persona.sources import SourceAnswer

logger = logging.getLogger(__name__)

# Deletes the entry only if it still holds the bytes we could not decode: a good entry
# stored meanwhile by another replica stays.
_DELETE_IF_UNCHANGED = """
local persona = redis.call('hget', KEYS[1], 'persona') or ''
local campaign = redis.call('hget', KEYS[1], 'campaign') or ''
local fetched_at = redis.call('hget', KEYS[1], 'fetched_at') or ''
if persona == ARGV[1] and campaign == ARGV[3] and fetched_at == ARGV[2] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisCache:
    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str,
        on_corrupt: Callable[[str], None] | None = None,
        owns_client: bool = True,
    ) -> None:
        """`client` comes from `services.common.redis_client` (one per process, shared
        with the fetch lease); `owns_client` says whether `aclose` closes it."""
        self.key_prefix = key_prefix
        self._on_corrupt = on_corrupt or (lambda key: None)
        self._redis = client
        self._owns_client = owns_client

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    async def get(self, key: str) -> CacheEntry | None:
        try:
            fields = await self._redis.hgetall(self._key(key))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis get failed: {exc}") from exc
        if not fields or b"fetched_at" not in fields:
            return None
        try:
            return CacheEntry(answer=_decode_answer(fields), fetched_at=float(fields[b"fetched_at"]))
        except (DecodeError, ValueError, TypeError) as exc:
            # A corrupt or foreign value is a miss, not an outage. It is dropped, so it is
            # logged and counted once, not on every read until the fetch overwrites it.
            logger.warning("corrupt cache entry %s in redis; dropping it: %s", self._key(key), exc)
            self._on_corrupt(key)
            await self._drop_corrupt(key, fields)
            return None

    async def _drop_corrupt(self, key: str, fields: Mapping[bytes | str, bytes | str]) -> None:
        try:
            await self._redis.eval(
                _DELETE_IF_UNCHANGED,
                1,
                self._key(key),
                fields.get(b"persona", b""),
                fields.get(b"fetched_at", b""),
                fields.get(b"campaign", b""),
            )
        except (RedisError, OSError):
            pass  # the next read finds it again; nothing worse

    async def set(self, key: str, entry: CacheEntry, keep_seconds: float) -> None:
        mapping: dict[FieldT, EncodableT] = {"fetched_at": repr(entry.fetched_at)}
        if isinstance(entry.answer, Campaign):
            mapping["campaign"] = entry.answer.SerializeToString()
        elif entry.answer is not None:
            mapping["persona"] = entry.answer.SerializeToString()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(key))
                pipe.hset(self._key(key), mapping=mapping)
                pipe.pexpire(self._key(key), max(1, int(keep_seconds * 1000)))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis set failed: {exc}") from exc

    async def delete(self, key: str) -> bool:
        try:
            return bool(await self._redis.delete(self._key(key)))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis delete failed: {exc}") from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self._redis.aclose()


def _decode_answer(fields: Mapping[bytes | str, bytes | str]) -> SourceAnswer | None:
    persona, campaign = fields.get(b"persona"), fields.get(b"campaign")
    if persona is not None and campaign is not None:
        raise ValueError("the entry holds both a persona and a campaign")
    raw, kind = (persona, Persona) if persona is not None else (campaign, Campaign)
    if raw is None:
        return None
    if not isinstance(raw, bytes):
        raise TypeError("the answer field is not bytes")
    return kind.FromString(raw)
