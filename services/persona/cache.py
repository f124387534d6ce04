"""PersonaCache: the in-process cache, plus Redis in front of it when configured.

With Redis, reads go to Redis (so an invalidation or a fetch by another replica is
seen at once) and writes go to both; when Redis fails the in-process copy keeps the
service working, and the failure is logged once per outage and counted.

A failed Redis operation opens a breaker: reads and writes skip Redis for a cool-down
(the in-process cache alone), then the next one tries again. Without it, a blackholed
Redis costs every lookup a socket timeout per operation (read, fetch lease, write),
enough to blow a ring's budget. Deletes (invalidations) always try Redis: they are
rare, and skipping one would leave other replicas serving the old persona."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from services.persona.cache_entry import CacheBackend, CacheEntry, CacheUnavailable
from services.persona.memory_cache import MemoryCache

logger = logging.getLogger(__name__)


class PersonaCache:
    def __init__(
        self,
        memory: MemoryCache,
        shared: CacheBackend | None = None,
        *,
        count_shared_error: Callable[[str], None] | None = None,
        redis_cooldown_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.memory = memory
        self.shared = shared
        self._count_shared_error = count_shared_error or (lambda op: None)
        self._shared_down = False
        self._cooldown = redis_cooldown_seconds
        self._clock = clock
        self._skip_shared_until = 0.0

    def breaker_open(self) -> bool:
        """Is Redis being skipped right now (a failure less than a cool-down ago)?
        The fetch lease lives in the same Redis and follows it too."""
        return self._clock() < self._skip_shared_until

    def shared_failed(self, op: str, exc: Exception) -> None:
        """Records a failed Redis operation (also the lease's) and opens the breaker."""
        self._count_shared_error(op)
        self._skip_shared_until = self._clock() + self._cooldown
        if not self._shared_down:
            logger.warning(
                "redis unavailable (%s); serving from the in-process cache, retrying redis every %.0fs: %s",
                op,
                self._cooldown,
                exc,
            )
        self._shared_down = True

    async def get(self, key: str) -> CacheEntry | None:
        if self.shared is not None and not self.breaker_open():
            try:
                entry = await self.shared.get(key)
                self._shared_ok()
                return entry
            except CacheUnavailable as exc:
                self.shared_failed("get", exc)
        return self.memory.get_now(key)

    async def set(self, key: str, entry: CacheEntry, keep_seconds: float) -> None:
        await self.memory.set(key, entry, keep_seconds)
        if self.shared is not None and not self.breaker_open():
            try:
                await self.shared.set(key, entry, keep_seconds)
                self._shared_ok()
            except CacheUnavailable as exc:
                self.shared_failed("set", exc)

    async def delete(self, key: str) -> bool:
        removed = await self.memory.delete(key)
        if self.shared is not None:
            try:
                removed = await self.shared.delete(key) or removed
                self._shared_ok()
            except CacheUnavailable as exc:
                self.shared_failed("delete", exc)
        return removed

    async def aclose(self) -> None:
        await self.memory.aclose()
        if self.shared is not None:
            await self.shared.aclose()

    def _shared_ok(self) -> None:
        if self._shared_down:
            logger.info("redis reachable again")
        self._shared_down = False
        self._skip_shared_until = 0.0
