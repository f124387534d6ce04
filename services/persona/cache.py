"""PersonaCache: the in-process cache, plus Redis in front of it when configured.

With Redis, reads go to Redis (so an invalidation or a fetch by another replica is
seen at once) and writes go to both; when Redis fails the in-process copy keeps the
service working, and the failure is logged once per outage and counted."""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.persona.cache_entry import CacheBackend, CacheEntry, CacheUnavailable
from services.persona.memory_cache import MemoryCache

log = logging.getLogger("friday.persona.cache")


class PersonaCache:
    def __init__(
        self,
        memory: MemoryCache,
        shared: CacheBackend | None = None,
        *,
        count_shared_error: Callable[[str], None] | None = None,
    ) -> None:
        self.memory = memory
        self.shared = shared
        self._count_shared_error = count_shared_error or (lambda op: None)
        self._shared_down = False

    async def get(self, key: str) -> CacheEntry | None:
        if self.shared is not None:
            try:
                entry = await self.shared.get(key)
                self._shared_ok()
                return entry
            except CacheUnavailable as exc:
                self._shared_failed("get", exc)
        return await self.memory.get(key)

    async def set(self, key: str, entry: CacheEntry, keep_seconds: float) -> None:
        await self.memory.set(key, entry, keep_seconds)
        if self.shared is not None:
            try:
                await self.shared.set(key, entry, keep_seconds)
                self._shared_ok()
            except CacheUnavailable as exc:
                self._shared_failed("set", exc)

    async def delete(self, key: str) -> bool:
        removed = await self.memory.delete(key)
        if self.shared is not None:
            try:
                removed = await self.shared.delete(key) or removed
                self._shared_ok()
            except CacheUnavailable as exc:
                self._shared_failed("delete", exc)
        return removed

    async def aclose(self) -> None:
        await self.memory.aclose()
        if self.shared is not None:
            await self.shared.aclose()

    def _shared_failed(self, op: str, exc: Exception) -> None:
        self._count_shared_error(op)
        if not self._shared_down:
            log.warning("redis unavailable (%s); serving from the in-process cache: %s", op, exc)
        self._shared_down = True

    def _shared_ok(self) -> None:
        if self._shared_down:
            log.info("redis reachable again")
        self._shared_down = False
