"""The group-commit log writer for SQLite: a dedicated thread with its own stdlib ``sqlite3`` connection.

Requests put their rows on a queue and await a future; the thread takes everything queued, commits it in
one transaction, and settles the batch's futures with one call back into the event loop. Values are
converted by SQLAlchemy's own SQLite bind processors, so rows read back through SQLAlchemy exactly as if
SQLAlchemy had written them.
"""

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from loopgate import metrics
from loopgate.store import tables
from loopgate.store.db import sqlite_path
from loopgate.store.writers import item_error

_log = logging.getLogger("loopgate.writer")
_DIALECT = sqlite_dialect()
_COLUMNS = [column.name for column in tables.logs.columns]
# ``dialect_impl``: a generic type (DateTime) has no processor of its own; without the SQLite one, sqlite3's
# default adapter wrote "2024-01-02 12:00:00+00:00" where SQLAlchemy writes and compares
# "2024-01-02 12:00:00.000000", and date-range queries over created_at missed rows.
_PROCESSORS: list[Callable[[Any], Any] | None] = [
    column.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) for column in tables.logs.columns
]


def _datetime_processor(sqlalchemy_process: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """SQLAlchemy's text for a datetime ("2024-01-02 12:00:00.000000", the offset dropped as it drops it),
    written by ``isoformat`` in C: SQLAlchemy's processor formats through a Python dict, and it ran twice
    per log on the event loop. Anything but a datetime still goes to SQLAlchemy's own processor. The last
    value is remembered: a log's created_at and updated_at are one object, shared by a request's samples."""
    last: tuple[Any, Any] = (None, None)

    def process(value: Any) -> Any:
        nonlocal last
        if value is last[0]:
            return last[1]
        if type(value) is datetime:
            text = value.replace(tzinfo=None).isoformat(" ", "microseconds")
        else:
            assert sqlalchemy_process is not None
            text = sqlalchemy_process(value)
        last = (value, text)
        return text

    return process


# One instance for created_at and updated_at, so its memory of the last value serves both.
_DATETIME = _datetime_processor(DateTime().dialect_impl(_DIALECT).bind_processor(_DIALECT))
_PROCESSED = [
    (position, _DATETIME if isinstance(column.type, DateTime) else process)
    for position, (column, process) in enumerate(zip(tables.logs.columns, _PROCESSORS, strict=True))
    if process is not None
]
# SQLAlchemy compiles the statement (qmark parameters, columns in table order), so it cannot drift.
_INSERT_LOG, _LOG_VALUES = str(tables.logs.insert().compile(dialect=_DIALECT)).split(" VALUES ")
_INSERT_BLOB, _BLOB_VALUES = "INSERT OR IGNORE INTO blobs (hash, data)", "(?, ?)"
# Rows per INSERT statement: multi-row statements instead of executemany, whose per-row GIL release makes
# the writer thread queue behind a busy event loop for every row (measured: 15 ms vs 4 ms for 10 rows at a
# 1 ms switch interval). Only powers of two up to 128 (a batch of 37 rows is 32 + 4 + 1): each size is its
# own statement text, and a prepared n-row INSERT into logs holds ~20 KiB + 2.7 KiB per row, so one per
# batch size seen kept ~10 MiB prepared at c=32-64 (docs/benchmarks.md, the RSS soak). Eight sizes stay
# prepared (~0.9 MiB) and none is ever prepared twice. 128 x 30 columns is far below SQLite's 32,766
# variables.
_STATEMENT_SIZES = (128, 64, 32, 16, 8, 4, 2, 1)
# Eight sizes for logs and eight for blobs, plus BEGIN / COMMIT / ROLLBACK.
_CACHED_STATEMENTS = 32


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[None]
    rows: list[tuple[Any, ...]]
    blobs: dict[str, str]


def row(log: dict[str, Any]) -> tuple[Any, ...]:
    """Column values in table order; a column the row does not name is NULL."""
    values = list(map(log.get, _COLUMNS))
    for position, process in _PROCESSED:
        value = values[position]
        if value is not None:
            values[position] = process(value)
    return tuple(values)


class SQLiteLogWriter:
    def __init__(self, url: str, *, max_batch: int = 512, synchronous: str = "FULL") -> None:
        self._path = sqlite_path(url)
        self._max_batch = max_batch
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self.commits = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connection = connect(self._path, self._synchronous)
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="loopgate-log-writer", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def write_logs(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> None:
        await self.write_logs_nowait(logs, blobs)

    def write_logs_nowait(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> asyncio.Future[None]:
        assert self._loop is not None, "writer not started"
        # Rows are converted here, on the event loop, so the writer thread holds the GIL only to commit.
        item = _Item(self._loop.create_future(), [row(log) for log in logs], blobs)
        self._queue.put(item)
        return item.future

    # -- the writer thread ------------------------------------------------------------------------------

    def _run(self, connection: sqlite3.Connection) -> None:
        self._lock_fd = open_lock_file(self._path)
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                batch: list[_Item] = []
                if first is None:
                    stopping = True
                else:
                    batch.append(first)
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        continue
                    batch.append(item)
                if batch:
                    self._commit(connection, batch)
        finally:
            connection.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def _commit(self, connection: sqlite3.Connection, batch: list[_Item]) -> None:
        errors = commit_batch(connection, self._lock_fd, [(item.rows, item.blobs) for item in batch])
        self.commits += 1
        outcomes = [
            (item.future, None if error is None else item_error(error))
            for item, error in zip(batch, errors, strict=True)
        ]
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(_settle, outcomes)


Rows = list[tuple[Any, ...]]


def commit_batch(
    connection: sqlite3.Connection, lock_fd: int | None, batch: list[tuple[Rows, dict[str, str]]]
) -> list[Exception | None]:
    """Commit every item's rows and blobs in one transaction; if that fails, each item in a transaction of
    its own. Returns each item's error (None: committed)."""
    # Counted only once a transaction is over: nothing after its COMMIT may fail it (and retry its rows).
    try:
        committed = _transaction(connection, lock_fd, batch)
    except sqlite3.IntegrityError as exc:
        # One item's conflict (two requests racing for a reference_id): expected, and answered with a 409.
        _log.info("group commit of %d items hit a conflict (%s); retrying them one by one", len(batch), exc)
    except Exception:
        _log.warning("group commit of %d items failed; retrying them one by one", len(batch), exc_info=True)
    else:
        metrics.log_commit(*committed)
        return [None] * len(batch)
    errors: list[Exception | None] = []
    for item in batch:
        try:
            committed = _transaction(connection, lock_fd, [item])
        except Exception as exc:
            metrics.log_write_failure()
            errors.append(exc)
        else:
            metrics.log_commit(*committed)
            errors.append(None)
    return errors


def _transaction(
    connection: sqlite3.Connection, lock_fd: int | None, batch: list[tuple[Rows, dict[str, str]]]
) -> tuple[int, float]:
    """Returns the logs committed and the seconds the transaction took."""
    blobs: dict[str, str] = {}
    rows: Rows = []
    for item_rows, item_blobs in batch:
        blobs.update(item_blobs)
        rows.extend(item_rows)
    with _exclusive(lock_fd):
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        try:
            _insert_many(connection, _INSERT_BLOB, _BLOB_VALUES, list(blobs.items()))
            _insert_many(connection, _INSERT_LOG, _LOG_VALUES, rows)
            connection.execute("COMMIT")
        except BaseException:
            # A COMMIT that fails on I/O (a full disk) has already rolled back, and a ROLLBACK then raised
            # "no transaction is active" in place of the error that says what went wrong.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    return len(rows), time.perf_counter() - started


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """The writer's connection. ``temp_store=MEMORY``: a multi-row INSERT runs with a statement journal
    (its triggers could fail halfway), which SQLite spills to a file in /var/tmp past 64 KiB. At c=32
    that was a temporary file created, written (a third of the writer's ``pwrite`` calls) and deleted for
    every other commit; in memory, 65 us less CPU per request (docs/benchmarks.md). The journal is
    bounded by the largest statement, 128 rows."""
    connection = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=30,
        cached_statements=_CACHED_STATEMENTS,
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("PRAGMA temp_store=MEMORY")
    return connection


def open_lock_file(path: str) -> int | None:
    """The lock file that orders the writers of several processes sharing one database file."""
    if not path or path == ":memory:":
        return None
    return os.open(f"{path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def _exclusive(lock_fd: int | None) -> Iterator[None]:
    """Holds the writer lock for one transaction. With several processes on one file (``serve --workers
    N``), a writer that finds the database locked otherwise waits in SQLite's busy handler, which sleeps
    1, 2, 5 ... 100 ms between tries: a p99 of 585 ms at 2 workers. A blocking ``flock`` (the GIL is
    released while it waits) wakes the moment the other process commits. ``flock`` locks are separate
    from the POSIX locks SQLite takes, so they cannot interfere with them."""
    if lock_fd is None:
        yield
        return
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def _insert_many(connection: sqlite3.Connection, head: str, group: str, rows: list[tuple[Any, ...]]) -> None:
    start = 0
    while start < len(rows):
        size = next(size for size in _STATEMENT_SIZES if size <= len(rows) - start)
        chunk = rows[start : start + size]
        connection.execute(_statement(head, group, size), [value for row in chunk for value in row])
        start += size


@functools.cache
def _statement(head: str, group: str, rows: int) -> str:
    return f"{head} VALUES {', '.join([group] * rows)}"


def _settle(outcomes: list[tuple[asyncio.Future[None], Exception | None]]) -> None:
    for future, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
