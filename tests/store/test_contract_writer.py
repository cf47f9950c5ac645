"""The group-commit writer of each backend: concurrent requests share commits, one bad item fails alone,
rows of different shapes share a batch, content is stored once, stop() commits what it was handed."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func, select

from loopgate.errors import ConflictError
from loopgate.store import tables
from loopgate.store.repository import Store
from tests.store.conftest import log_row, write


async def _count(store: Store, table: tables.Table) -> int:
    async with store.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def test_concurrent_writes_share_commits_and_blobs(store: Store, org: str) -> None:
    before = store.writer.commits
    shared = {"s" * 32: "a system prompt repeated by every request " * 3}
    await asyncio.gather(*(store.writer.write_logs([log_row(org)], dict(shared)) for _ in range(200)))
    assert store.writer.commits - before < 100
    assert await _count(store, tables.logs) == 200
    assert await _count(store, tables.blobs) == 1


async def test_a_failing_item_fails_alone(store: Store, org: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loopgate.writer")
    taken = log_row(org)
    await write(store, taken)
    ok1, ok2 = log_row(org), log_row(org)
    results = await asyncio.gather(
        store.writer.write_logs([ok1], {}),
        store.writer.write_logs([dict(taken)], {}),  # duplicate primary key
        store.writer.write_logs([ok2], {}),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and isinstance(results[1], ConflictError)
    async with store.engine.connect() as connection:
        found = set((await connection.execute(select(tables.logs.c.id))).scalars())
    assert found == {taken["id"], ok1["id"], ok2["id"]}
    # A conflict is expected (a 409), not a failure: one line, no traceback in the server's log.
    written = [record for record in caplog.records if record.name == "loopgate.writer"]
    assert any("conflict" in record.getMessage() for record in written)
    assert not [record for record in written if record.exc_info]


async def test_a_reference_id_taken_meanwhile_is_a_conflict_not_a_crash(store: Store, org: str) -> None:
    # Two processes may both see a reference_id as free before either commits: the database decides.
    first, second = log_row(org, reference_id="ref-raced"), log_row(org, reference_id="ref-raced")
    await write(store, first)
    with pytest.raises(ConflictError, match="reference_id") as refused:
        await store.writer.write_logs([second], {})
    assert refused.value.status_code == 409


async def test_rows_naming_different_columns_share_a_batch(store: Store, org: str) -> None:
    generated = log_row(org, provider_retries=1)
    posted = log_row(org, judgment="fine", duration=0.5)
    del posted["payload"]
    await asyncio.gather(store.writer.write_logs([generated], {}), store.writer.write_logs([posted], {}))
    assert (await store.get_log(org, generated["id"]) or {})["provider_retries"] == 1
    stored = await store.get_log(org, posted["id"])
    assert stored is not None and stored["judgment"] == "fine" and stored["payload"] is None


async def test_stop_commits_what_was_handed_over(store: Store, org: str) -> None:
    pending = [store.writer.write_logs_nowait([log_row(org)], {}) for _ in range(20)]
    await store.writer.stop()
    await asyncio.sleep(0)  # let the settling callbacks run
    assert all(future.done() and future.exception() is None for future in pending)
    assert await _count(store, tables.logs) == 20
    await store.writer.start()  # the fixture stops it again
