"""Redis cache shared by replicas. One hash per number under `<prefix><e164>`:
`persona` = serialised Persona bytes (absent for a negative entry), `fetched_at`."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.asyncio as redis
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError

from friday.persona.v1.persona_pb2 import Persona
from services.persona.cache_entry import CacheEntry, CacheUnavailable

log = logging.getLogger("friday.persona.redis")


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        timeout_seconds: float = 0.25,
        on_corrupt: Callable[[str], None] | None = None,
    ) -> None:
        self.key_prefix = key_prefix
        self._on_corrupt = on_corrupt or (lambda key: None)
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
        )

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
            persona = Persona.FromString(fields[b"persona"]) if b"persona" in fields else None
            return CacheEntry(persona=persona, fetched_at=float(fields[b"fetched_at"]))
        except (DecodeError, ValueError, TypeError) as exc:
            # A corrupt or foreign value is a miss, not an outage: the fetch that follows
            # overwrites it, so this is logged once per bad entry, not once per lookup forever.
            log.warning("corrupt cache entry %s in redis; treating it as a miss: %s", self._key(key), exc)
            self._on_corrupt(key)
            return None

    async def set(self, key: str, entry: CacheEntry, keep_seconds: float) -> None:
        mapping: dict[str, bytes | str] = {"fetched_at": repr(entry.fetched_at)}
        if entry.persona is not None:
            mapping["persona"] = entry.persona.SerializeToString()
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

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
