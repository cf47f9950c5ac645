"""The group-commit writers (SQLite thread and SQLAlchemy): concurrent writers share commits, a failing
item fails only itself, stop() commits what was handed over, and rows read back as SQLAlchemy wrote them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate import metrics
from loopgate.store import tables
from loopgate.store.db import create_engine, migrate
from loopgate.store.repository import Store
from loopgate.store.writers import LogWriter
from loopgate.store.writers.sqlalchemy import SQLAlchemyLogWriter
from loopgate.store.writers.sqlite import SQLiteLogWriter, connect

STAMP = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _log(log_id: str, org_id: str = "tm_x") -> dict[str, Any]:
    return {
        "id": log_id,
        "org_id": org_id,
        "project_id": None,
        "session_id": None,
        "parent_id": None,
        "reference_id": None,
        "config_id": None,
        "created_at": STAMP,
        "updated_at": STAMP,
        "source": None,
        "source_datapoint_id": None,
        "environment": None,
        "user": None,
        "save": True,
        "status": "complete",
        "sample_index": 0,
        "output": "o",
        "finish_reason": "stop",
        "error": None,
        "prompt_tokens": 1,
        "output_tokens": 1,
        "provider_latency": 0.0,
        "metadata": '{"k": 1}',
        "payload": '{"inputs": {}}',
    }


@pytest.fixture(params=["sqlite-thread", "sqlalchemy"])
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[LogWriter, AsyncEngine]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    writer: LogWriter = (
        SQLiteLogWriter(url, max_batch=512)
        if request.param == "sqlite-thread"
        else SQLAlchemyLogWriter(engine, max_batch=512)
    )
    await writer.start()
    yield writer, engine
    await writer.stop()
    await engine.dispose()


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def test_concurrent_writes_share_commits(setup: tuple[LogWriter, AsyncEngine]) -> None:
    writer, engine = setup
    await asyncio.gather(
        *(writer.write_logs([_log(f"data_{i}")], {f"h{i % 3}": "x" * 100}) for i in range(200))
    )
    assert writer.commits < 50  # 200 requests, a handful of fsyncs
    assert await _count(engine, tables.logs) == 200
    assert await _count(engine, tables.blobs) == 3


async def test_a_large_batch_is_written_whole(setup: tuple[LogWriter, AsyncEngine]) -> None:
    writer, engine = setup
    await writer.write_logs(
        [_log(f"data_big{i}") for i in range(301)], {f"h{i}": "x" * 100 for i in range(37)}
    )
    assert await _count(engine, tables.logs) == 301  # 128 + 128 + 32 + 8 + 4 + 1 rows on SQLite
    assert await _count(engine, tables.blobs) == 37


async def test_a_failing_item_fails_alone(
    setup: tuple[LogWriter, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, engine = setup
    counts = metrics.Registry()
    monkeypatch.setattr(metrics, "_registry", counts)  # counting on, for this test only
    await writer.write_logs([_log("data_taken")], {})
    results = await asyncio.gather(
        writer.write_logs([_log("data_ok1")], {}),
        writer.write_logs([_log("data_taken")], {}),  # duplicate primary key
        writer.write_logs([_log("data_ok2")], {}),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    async with engine.connect() as connection:
        ids = set((await connection.execute(select(tables.logs.c.id))).scalars())
    assert ids == {"data_taken", "data_ok1", "data_ok2"}
    # /metrics: three logs committed (the first alone, the others in transactions of their own after the
    # group failed), one request refused, and each transaction timed.
    assert counts.series[metrics.LOGS_COMMITTED][()] == [3.0]
    assert counts.series[metrics.LOG_WRITE_FAILURES][()] == [1.0]
    commits = counts.series[metrics.LOG_COMMITS][()][0]
    assert sum(counts.series[metrics.COMMIT_DURATION][()][:-1]) == commits


async def test_stop_commits_what_was_handed_over(setup: tuple[LogWriter, AsyncEngine]) -> None:
    writer, engine = setup
    pending = [writer.write_logs_nowait([_log(f"data_late{i}")], {}) for i in range(20)]
    await writer.stop()
    await asyncio.sleep(0)  # let the settling callback run
    assert all(f.done() and f.exception() is None for f in pending)
    assert await _count(engine, tables.logs) == 20


async def test_rows_read_back_through_sqlalchemy(setup: tuple[LogWriter, AsyncEngine]) -> None:
    writer, engine = setup
    await writer.write_logs([_log("data_round")], {})
    log = await Store(engine, writer).get_log("tm_x", "data_round")
    assert log is not None
    assert log["created_at"].replace(tzinfo=UTC) == STAMP
    assert log["save"] is True and log["metadata"] == {"k": 1} and log["payload"] == {"inputs": {}}


def test_sqlite_rows_bind_datetimes_as_sqlalchemy_does() -> None:
    from sqlalchemy import DateTime
    from sqlalchemy.dialects.sqlite import dialect

    from loopgate.store.writers.sqlite import _COLUMNS
    from loopgate.store.writers.sqlite import row as _row

    sqlalchemy_text = DateTime().dialect_impl(dialect()).bind_processor(dialect())
    assert sqlalchemy_text is not None
    created, updated = _COLUMNS.index("created_at"), _COLUMNS.index("updated_at")
    stamps = [
        STAMP,
        datetime(2026, 1, 2),  # naive, no microseconds
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime.fromisoformat("2026-01-02T03:04:05+05:30"),  # SQLAlchemy drops the offset: so do we
    ]
    for first, second in zip(stamps, stamps[1:] + stamps[:1], strict=True):
        row = _row({**_log("data_t"), "created_at": first, "updated_at": second})
        assert (row[created], row[updated]) == (sqlalchemy_text(first), sqlalchemy_text(second))


async def test_sqlite_writer_commits_under_the_cross_process_lock(tmp_path: Path) -> None:
    import fcntl
    import os

    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await asyncio.to_thread(migrate, url)
    writer = SQLiteLogWriter(url, max_batch=512)
    await writer.start()
    engine = create_engine(url)
    try:
        await writer.write_logs([_log("data_first")], {})  # the lock file exists once the writer runs
        other = os.open(tmp_path / "w.db.writer-lock", os.O_RDWR)
        fcntl.flock(other, fcntl.LOCK_EX)  # as another process's writer would, mid-commit
        pending = writer.write_logs_nowait([_log("data_waits")], {})
        await asyncio.sleep(0.3)
        assert not pending.done()  # it waits for the lock, not in SQLite's sleeping busy handler
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
        await asyncio.wait_for(pending, 5)
        assert await _count(engine, tables.logs) == 2
    finally:
        await writer.stop()
        await engine.dispose()


def test_sqlite_writer_connection_is_durable_and_keeps_journals_in_memory(tmp_path: Path) -> None:
    migrate(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    connection = connect(str(tmp_path / "w.db"), "FULL")
    try:
        pragma = {
            name: connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "temp_store")
        }
    finally:
        connection.close()
    # WAL + FULL: a commit that returned survives a power loss; temp_store 2 = MEMORY: statement journals
    # never spill to temporary files.
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "temp_store": 2}
