"""A small per-worker LRU cache for computed answers (coverage maps, simplified shapes).

Single flight: when several threads miss the same key at once, one makes the value and the
others wait for it. Under load every map read after an edit misses together: 10 threads each
computing the same coverage map (a second of CPU for the counties' shapes) saturated both
cores and queued every other request behind them (bench/RESULTS.md, "Load").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class _Flight:
    """One value being made: its waiters block on ``done`` until it is set."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class LruCache:
    """Up to ``max_entries`` values by key; the least recently used goes first."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._making: dict[Hashable, _Flight] = {}  # keys being made now, by one thread each
        self._lock = threading.Lock()  # routes run on several threads of one worker
        self.made = 0  # values made (misses that computed), for tests and metrics

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``make()``'s, kept for next time.

        ``make`` runs outside the lock (a slow one does not hold up other keys) and at most
        once at a time per key: concurrent callers of the same key wait for its value, or get
        its exception.
        """
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            flight = self._making.get(key)
            mine = flight is None
            if flight is None:
                flight = self._making[key] = _Flight()
        if not mine:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            value = make()
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                del self._making[key]
            flight.done.set()
            raise
        flight.value = value
        with self._lock:
            self.made += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
            del self._making[key]
        flight.done.set()
        return value

    def __len__(self) -> int:
        return len(self._items)
