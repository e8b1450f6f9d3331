"""A bounded, least-recently-used cache of stored session bodies by key."""

from __future__ import annotations

from collections import OrderedDict

from s3store.errors import ConfigurationError
from s3store.objects import StoredObject

__all__ = ["BodyCache"]


class BodyCache:
    """Keeps up to `max_bytes` of session bodies, each with the ETag it was stored under.

    A body larger than the whole budget is not kept. The least recently used
    entries go first when the budget is exceeded.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ConfigurationError(
                f"cache_bytes must be a positive size in bytes, not {max_bytes}"
            )
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, StoredObject] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> StoredObject | None:
        stored = self._entries.get(key)
        if stored is not None:
            self._entries.move_to_end(key)
        return stored

    def put(self, key: str, stored: StoredObject) -> None:
        self.evict(key)
        if len(stored.body) > self.max_bytes:
            return
        self._entries[key] = stored
        self.size += len(stored.body)
        while self.size > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.size -= len(oldest.body)

    def evict(self, key: str) -> None:
        stored = self._entries.pop(key, None)
        if stored is not None:
            self.size -= len(stored.body)
