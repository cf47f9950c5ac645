"""The group-commit writer: concurrent writers share commits, and a failing item fails only itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from loopgate.store import tables
from loopgate.store.db import create_engine, migrate
from loopgate.store.writer import GroupCommitWriter


def _log(log_id: str) -> dict[str, Any]:
    stamp = datetime.now(UTC)
    return {
        "id": log_id,
        "org_id": "tm_x",
        "project_id": None,
        "session_id": None,
        "parent_id": None,
        "reference_id": None,
        "config_id": None,
        "created_at": stamp,
        "updated_at": stamp,
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
        "metadata": None,
        "payload": None,
    }


@pytest.fixture
async def writer(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    instance = GroupCommitWriter(engine, max_batch=512)
    await instance.start()
    yield instance, engine
    await instance.stop()
    await engine.dispose()


async def test_concurrent_writes_share_commits(writer: Any) -> None:
    instance, engine = writer
    await asyncio.gather(
        *(instance.write_logs([_log(f"data_{i}")], {f"h{i % 3}": "x" * 100}) for i in range(200))
    )
    assert instance.commits < 50  # 200 requests, a handful of fsyncs
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(tables.logs))).scalar() == 200
        assert (await connection.execute(select(func.count()).select_from(tables.blobs))).scalar() == 3


async def test_a_failing_item_fails_alone(writer: Any) -> None:
    instance, engine = writer

    async def broken(connection: AsyncConnection) -> None:
        await connection.execute(text("INSERT INTO no_such_table VALUES (1)"))

    results = await asyncio.gather(
        instance.write_logs([_log("data_ok1")], {}),
        instance.run(broken),
        instance.write_logs([_log("data_ok2")], {}),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    async with engine.connect() as connection:
        ids = set((await connection.execute(select(tables.logs.c.id))).scalars())
    assert ids == {"data_ok1", "data_ok2"}


async def test_stop_commits_what_was_handed_over(writer: Any) -> None:
    instance, engine = writer
    pending = [instance.write_logs_nowait([_log(f"data_late{i}")], {}) for i in range(20)]
    await instance.stop()
    assert all(f.done() and f.exception() is None for f in pending)
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(tables.logs))).scalar() == 20
