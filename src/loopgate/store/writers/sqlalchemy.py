"""The group-commit log writer over a SQLAlchemy async engine (any backend; PostgreSQL in production).

Each batch takes a pooled connection for its one transaction -- blobs first with ON CONFLICT DO NOTHING,
then every log row in one executemany (asyncpg pipelines it: one round trip per batch, not per row) -- and
gives it back, so a connection the server dropped costs one failed batch (retried item by item on a fresh
connection), not every batch after it.
"""

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate import metrics
from loopgate.store import tables, tallies
from loopgate.store.queries import insert_ignore, storable
from loopgate.store.writers import item_error

_log = logging.getLogger("loopgate.writer")
_COLUMNS = [column.name for column in tables.logs.columns]


# PostgreSQL's text cannot hold U+0000, nor can its JSONB (the search index casts ``payload`` to it): a
# provider's output or error with one failed its log's insert, and the request with it, every time it was
# retried. Requests with one are refused when read (api/bodies.py), so only what a provider sends gets
# here; it is stored with U+FFFD in its place, and the client still gets it as sent. (SQLite, whose writer
# is another, stores it as it is.)
_NUL_ESCAPE = "\\u0000"
# In JSON text: the escape itself, not the letters after an escaped backslash ("\\u0000" is "\" + "u0000").
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _complete(log: dict[str, Any]) -> dict[str, Any]:
    """Every column, NULL where the row does not name it: executemany compiles one statement from the first
    row's keys, and rows from different paths (chat, POST /logs) name different optional columns."""
    row = {name: storable(log.get(name)) for name in _COLUMNS}
    payload = row["payload"]
    if type(payload) is str and _NUL_ESCAPE in payload:
        row["payload"] = _ESCAPED_NUL.sub(r"\1\\ufffd", payload)
    return row


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[None]
    logs: list[dict[str, Any]]
    blobs: dict[str, str]


class SQLAlchemyLogWriter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 512) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loopgate-group-commit")

    async def stop(self) -> None:
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def write_logs(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> None:
        await self.write_logs_nowait(logs, blobs)

    def write_logs_nowait(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> asyncio.Future[None]:
        item = _Item(asyncio.get_running_loop().create_future(), logs, blobs)
        self._queue.put_nowait(item)
        return item.future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Item] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    continue
                batch.append(item)
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        # Counted only once a transaction is over: nothing after its COMMIT may fail it (and retry its rows).
        try:
            committed = await self._transaction(batch)
        except Exception as exc:
            if isinstance(exc, IntegrityError):
                # One item's conflict (two requests racing for a reference_id): expected, answered 409.
                _log.info("group commit of %d items hit a conflict; retrying them one by one", len(batch))
            else:
                _log.warning(
                    "group commit of %d items failed; retrying them one by one", len(batch), exc_info=True
                )
            for item in batch:
                try:
                    committed = await self._transaction([item])
                except Exception as exc:
                    metrics.log_write_failure()
                    _settle(item.future, item_error(exc))
                else:
                    metrics.log_commit(*committed)
                    _settle(item.future, None)
            return
        metrics.log_commit(*committed)
        self.commits += 1
        for item in batch:
            _settle(item.future, None)

    async def _transaction(self, batch: list[_Item]) -> tuple[int, float]:
        """Returns the logs committed and the seconds the transaction took."""
        blobs: dict[str, str] = {}
        logs: list[dict[str, Any]] = []
        for item in batch:
            blobs.update(item.blobs)
            logs.extend(_complete(log) for log in item.logs)
        started = time.perf_counter()
        async with self._engine.begin() as connection:
            await _insert(connection, blobs, logs)
        return len(logs), time.perf_counter() - started


async def _insert(connection: AsyncConnection, blobs: dict[str, str], logs: list[dict[str, Any]]) -> None:
    if blobs:
        # Sorted: two processes inserting overlapping blobs lock them in the same order, never deadlock.
        rows = [{"hash": digest, "data": storable(blobs[digest])} for digest in sorted(blobs)]
        await connection.execute(insert_ignore(connection, tables.blobs), rows)
    if logs:
        # Sorted by tally row: the insert trigger updates log_tallies (revision 0005), see tallies.sort_key.
        await connection.execute(tables.logs.insert(), sorted(logs, key=tallies.sort_key))


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
