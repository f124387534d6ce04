"""The personas that real calls were served, kept apart from the cache's LRU.

The cache holds whatever was looked up, so a flood of distinct numbers nobody ever
called (each a 404, cached negatively) pushes every real number out of it; with the
CRM down at the same time, real callers would then get the default persona. This
store only takes a number when a lookup served it a persona (from the CRM or the
cache), so numbers that have a persona compete only with each other for its places,
and it is read only when the CRM cannot answer (stale-on-error). Entries older than
the maximum staleness are never served; a number the CRM no longer knows, or that
was invalidated, is dropped."""

from __future__ import annotations

from collections import OrderedDict

from services.persona.cache_entry import CacheEntry


class LastKnownGood:
    def __init__(self, max_entries: int, max_age_seconds: float) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must not be negative")
        self._max_entries = max_entries  # 0 = keep nothing
        self._max_age = max_age_seconds
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, key: str, entry: CacheEntry) -> None:
        if entry.answer is None or not self._max_entries:
            return
        held = self._entries.get(key)
        if held is None or held.fetched_at <= entry.fetched_at:
            self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def get(self, key: str, now: float) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.age(now) > self._max_age:
            del self._entries[key]
            return None
        return entry

    def forget(self, key: str) -> bool:
        return self._entries.pop(key, None) is not None

    def clear(self) -> None:
        self._entries.clear()
