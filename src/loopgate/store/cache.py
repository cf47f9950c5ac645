"""A small in-process cache with expiry, for lookups that every request repeats (API key -> organization,
project name -> id). Entries expire so changes made by other processes show up within ``ttl`` seconds."""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V | None]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value, else what ``load`` returns (kept unless None). Concurrent misses of one key
        share one load: when an entry expires under load, one query refreshes it, instead of one per
        request in flight -- which also opened every connection the pool allows, each on a thread of its
        own, all at once (docs/benchmarks.md, the RSS soak)."""
        cached = self.get(key)
        if cached is not None:
            return cached
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            # Retrieved here too, so a failure nobody is still waiting for is not reported as unhandled.
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._loading[key] = pending
        # shield: a request that is cancelled while waiting must not cancel the load the others await.
        return await asyncio.shield(pending)

    async def _load(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        try:
            value = await load()
            if value is not None:
                self.put(key, value)
            return value
        finally:
            del self._loading[key]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)
