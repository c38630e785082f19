"""L1: values in process memory, least recently used out, bounded in bytes (not in entries).

Values are kept as the objects themselves (a polars frame, a model record, a loaded booster), so a hit
costs a dictionary lookup; callers must treat them as read-only. Each entry is charged the bytes its
codec reports; a value larger than the whole bound is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from hikyuu_qlib.domain.cache import Tier, TierUsage


class MemoryTier:
    """A thread-safe LRU of at most ``max_bytes`` bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    def get(self, name: str) -> Any | None:
        with self._lock:
            found = self._items.get(name)
            if found is None:
                return None
            self._items.move_to_end(name)
            return found[0]

    def put(self, name: str, value: Any, nbytes: int) -> bool:
        """Keep ``value`` (evicting the least recently used); False when it is larger than the bound."""
        if nbytes > self.max_bytes:
            self.delete(name)
            return False
        with self._lock:
            old = self._items.pop(name, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[name] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size
        return True

    def delete(self, name: str) -> bool:
        with self._lock:
            old = self._items.pop(name, None)
            if old is None:
                return False
            self._bytes -= old[1]
            return True

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            names = [n for n in self._items if n.startswith(prefix)]
        return sum(self.delete(n) for n in names)

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._bytes = 0
            return count

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def usage(self) -> TierUsage:
        with self._lock:
            return TierUsage(Tier.MEMORY, True, len(self._items), self._bytes, self.max_bytes, "this process")
