"""In-process cache: TTL per entry + LRU bound on the number of entries."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from services.persona.cache_entry import CacheEntry


class MemoryCache:
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[CacheEntry, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CacheEntry | None:
        return self.get_now(key)

    def get_now(self, key: str) -> CacheEntry | None:
        """`get` without a coroutine: PersonaCache's in-process read on every lookup."""
        item = self._entries.get(key)
        if item is None:
            return None
        entry, expires_at = item
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CacheEntry, keep_seconds: float) -> None:
        self._entries[key] = (entry, self._clock() + keep_seconds)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> bool:
        return self._entries.pop(key, None) is not None

    async def aclose(self) -> None:
        self._entries.clear()
