"""The group-commit writer: the only path by which the server writes.

A request hands its writes to the writer and awaits the commit that holds them; meanwhile other requests'
writes pile up, and the next commit takes them all in one transaction (one fsync). So a 200 means "on
disk", yet a burst of N concurrent requests costs one commit, not N. No in-memory queue outlives the
request that filled it: a crash can only lose writes whose requests had not been answered.

Two kinds of work share a batch: log inserts (gathered into one multi-row insert per table) and small
operations (get-or-create of projects, configs, sessions) that run one after another. If the batch fails,
every item is retried in a transaction of its own, so one bad item fails only its own request.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate.store import tables

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[Any]]
_log = logging.getLogger("loopgate.writer")


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[Any]
    operation: Operation | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, str] = field(default_factory=dict)


class GroupCommitWriter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 512) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loopgate-group-commit")

    async def stop(self) -> None:
        """Commit everything already handed over, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def run(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        item = _Item(asyncio.get_running_loop().create_future(), operation=operation)
        self._queue.put_nowait(item)
        result: T = await item.future
        return result

    async def write_logs(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> None:
        await self.write_logs_nowait(logs, blobs)

    def write_logs_nowait(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> asyncio.Future[Any]:
        """Queue logs without waiting: for paths that cannot await (a stream the client abandoned)."""
        item = _Item(asyncio.get_running_loop().create_future(), logs=logs, blobs=blobs)
        self._queue.put_nowait(item)
        return item.future

    async def _run(self) -> None:
        async with self._engine.connect() as connection:
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
                    await self._commit(connection, batch)

    async def _commit(self, connection: AsyncConnection, batch: list[_Item]) -> None:
        try:
            results = await self._transaction(connection, batch)
        except Exception:
            _log.warning(
                "group commit of %d items failed; retrying them one by one", len(batch), exc_info=True
            )
            for item in batch:
                try:
                    (result,) = await self._transaction(connection, [item])
                except Exception as exc:
                    if not item.future.done():
                        item.future.set_exception(exc)
                else:
                    if not item.future.done():
                        item.future.set_result(result)
            return
        self.commits += 1
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    async def _transaction(self, connection: AsyncConnection, batch: list[_Item]) -> list[Any]:
        try:
            results: list[Any] = []
            blobs: dict[str, str] = {}
            logs: list[dict[str, Any]] = []
            for item in batch:
                results.append(await item.operation(connection) if item.operation else None)
                blobs.update(item.blobs)
                logs.extend(item.logs)
            if blobs:
                rows = [{"hash": digest, "data": text} for digest, text in blobs.items()]
                await connection.execute(insert_ignore(connection, tables.blobs), rows)
            if logs:
                await connection.execute(tables.logs.insert(), logs)
            await connection.commit()
            return results
        except BaseException:
            await connection.rollback()
            raise


def insert_ignore(connection: AsyncConnection, table: Table) -> Any:
    """INSERT that leaves an existing row with the same unique key alone (both backends)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()
