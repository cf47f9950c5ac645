"""Group-commit log writers: the only way logs reach the database.

A request hands its log rows to the writer and awaits the commit that holds them; meanwhile other
requests' rows pile up, and the next commit takes them all in one transaction (one fsync). So a 200 means
"on disk", yet a burst of N concurrent requests costs one commit, not N. No in-memory queue outlives the
request that filled it: a crash can only lose logs whose requests had not been answered. If a batch fails,
each item is retried in a transaction of its own, so one bad item fails only its own request.

Two implementations of one small interface:
- ``sqlite.SQLiteLogWriter``: a dedicated thread with its own stdlib ``sqlite3`` connection -- one thread
  hop per batch instead of several per statement (measured: 0.8 ms vs 2.4 ms per single-request commit);
- ``sqlalchemy.SQLAlchemyLogWriter``: the same protocol over any SQLAlchemy async engine.
"""

import asyncio
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store.db import is_sqlite


class LogWriter(Protocol):
    commits: int

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Commit everything already handed over, then stop."""

    async def write_logs(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> None:
        """Insert log rows (and content blobs, if absent); returns once they are committed."""

    def write_logs_nowait(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> asyncio.Future[None]:
        """Queue logs without waiting: for paths that cannot await (a stream the client abandoned)."""


def create_writer(engine: AsyncEngine, url: str, *, max_batch: int, synchronous: str = "FULL") -> LogWriter:
    if is_sqlite(url):
        from loopgate.store.writers.sqlite import SQLiteLogWriter

        return SQLiteLogWriter(url, max_batch=max_batch, synchronous=synchronous)
    from loopgate.store.writers.sqlalchemy import SQLAlchemyLogWriter

    return SQLAlchemyLogWriter(engine, max_batch=max_batch)
