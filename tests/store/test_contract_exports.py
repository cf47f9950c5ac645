"""The export cursor of each backend (store/exports.py): committed logs come back in commit order (not id or
created_at order) from where the cursor stands, one process at a time holds the lease, and neither a
deletion of the newest logs (SQLite rowids handed out again) nor a transaction still open (PostgreSQL)
can make a log be skipped."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from loopgate.store.exports import Cursor, ExportStore
from loopgate.store.logs import LogStore
from loopgate.store.repository import Store
from tests.store.conftest import log_row, stamp, write


def _exports(store: Store, **options: float) -> ExportStore:
    return ExportStore(store.engine, "test", **options)


async def _claim(exports: ExportStore, owner: str = "a") -> Cursor:
    cursor = await exports.claim(owner)
    assert cursor is not None
    return cursor


async def _read_ids(exports: ExportStore, cursor: Cursor, limit: int = 100) -> tuple[list[str], Cursor]:
    rows, end = await exports.read(cursor, limit, content=False)
    return [row["id"] for row in rows], end


async def test_export_starts_after_the_newest_log_and_follows_commit_order(store: Store, org: str) -> None:
    await write(store, log_row(org), log_row(org))  # before export was enabled: never sent
    exports = _exports(store)
    cursor = await _claim(exports)
    assert (await _read_ids(exports, cursor)) == ([], cursor)

    # Committed in this order, though the later one has the smaller id and the earlier created_at.
    first = log_row(org, id="data_zzzz" + uuid.uuid4().hex[:12], created_at=stamp(5))
    second = log_row(org, id="data_aaaa" + uuid.uuid4().hex[:12], created_at=stamp(1))
    await write(store, first)
    await write(store, second)
    got, end = await _read_ids(exports, cursor)
    assert got == [first["id"], second["id"]]

    assert (await _read_ids(exports, cursor, limit=1))[0] == [first["id"]]
    assert await exports.advance("a", cursor, end, exported=2, dropped=0)
    assert (await _read_ids(exports, await _claim(exports)))[0] == []


async def test_one_owner_at_a_time_and_a_lost_lease_cannot_move_the_cursor(store: Store, org: str) -> None:
    exports = _exports(store)
    cursor = await _claim(exports, "a")
    assert await exports.claim("b") is None
    assert await exports.claim("b", abandoned=lambda holder: holder == "a") is not None  # "a" is gone
    await write(store, log_row(org))
    got, end = await _read_ids(exports, cursor)
    assert len(got) == 1
    assert not await exports.advance("a", cursor, end, exported=1, dropped=0)
    assert not await exports.renew("a")
    assert await exports.renew("b")

    await exports.release("b")
    taken = await _claim(exports, "c")
    assert taken == cursor  # nothing was acknowledged: the log is read again


async def test_a_lapsed_lease_is_taken_over(store: Store, org: str) -> None:
    # Long enough that a loaded machine cannot let it lapse between the first two claims (0.05 s did).
    short = _exports(store, lease_seconds=1.0)
    await _claim(short, "a")
    assert await short.claim("b") is None
    await asyncio.sleep(1.1)
    assert await short.claim("b") is not None
    assert await short.claim("a") is None


async def test_deleting_the_newest_logs_never_hides_the_next_ones(
    store: Store, org: str, backend: str
) -> None:
    """On SQLite the rowids of deleted newest logs are handed out again: a cursor left past them, or a
    batch read before the deletion, would skip the logs that get them."""
    exports = _exports(store)
    logs = LogStore(store.engine)
    cursor = await _claim(exports)
    rows = [log_row(org) for _ in range(4)]
    await write(store, *rows)
    got, end = await _read_ids(exports, cursor)
    assert sorted(got) == sorted(row["id"] for row in rows)  # one commit: in any order
    assert await exports.advance("a", cursor, end, exported=4, dropped=0)
    cursor = await _claim(exports)

    assert await logs.delete(org, [rows[2]["id"], rows[3]["id"]]) == []  # the newest two
    after_delete = log_row(org)
    await write(store, after_delete)
    assert (await _read_ids(exports, await _claim(exports)))[0] == [after_delete["id"]]

    # A batch read before the newest logs are deleted cannot be acknowledged afterwards.
    cursor = await _claim(exports)
    got, end = await _read_ids(exports, cursor)
    assert got == [after_delete["id"]]
    assert await logs.delete(org, [after_delete["id"]]) == []
    newer = log_row(org)
    await write(store, newer)
    moved = await exports.advance("a", cursor, end, exported=1, dropped=0)
    assert moved == (backend == "postgresql")  # SQLite: the trigger bumped the cursor's generation
    assert (await _read_ids(exports, await _claim(exports)))[0] == [newer["id"]]


async def test_rows_carry_config_trace_keys_and_expanded_content(store: Store, org: str) -> None:
    project_id = await store.project_by_name(org, "exports")
    body = {"provider": "mock", "model": "mock-1", "endpoint": "chat", "temperature": 0.5}
    config_id = await store.model_config_id(org, project_id, "h" * 64, body)
    session = await store.session_by_reference(org, "exports-session")
    other_session = await store.session_by_reference(org, "exports-other")
    exports = _exports(store)
    cursor = await _claim(exports)

    root = log_row(org, project_id=project_id, config_id=config_id, metadata={"k": 1})
    child = log_row(org, project_id=project_id, parent_id=root["id"])
    grandchild = log_row(org, project_id=project_id, parent_id=child["id"])
    in_session = log_row(org, project_id=project_id, session_id=session)
    elsewhere = log_row(org, project_id=project_id, session_id=other_session, parent_id=in_session["id"])
    blobs: dict[str, str] = {}
    long_text = "a long message stored once as a blob " * 4
    with_content = log_row(org, blobs, messages=[{"role": "user", "content": long_text}])
    await write(store, root, in_session)
    await write(store, child)
    await write(store, grandchild, elsewhere, with_content, blobs=blobs)

    rows, _ = await exports.read(cursor, 100, content=True)
    by_id = {row["id"]: row for row in rows}
    assert by_id[root["id"]]["config"] == {**body, "config_type": "model"}
    assert by_id[root["id"]]["metadata"] == {"k": 1}
    assert by_id[root["id"]]["created_at"].tzinfo is not None
    for log in (root, child, grandchild):  # no session: the trace of the root log
        assert by_id[log["id"]]["trace_key"] == root["id"]
    assert by_id[grandchild["id"]]["parent_trace_key"] == root["id"]
    assert by_id[in_session["id"]]["trace_key"] == session
    assert by_id[elsewhere["id"]]["trace_key"] == other_session
    assert by_id[elsewhere["id"]]["parent_trace_key"] == session
    assert by_id[with_content["id"]]["payload"]["messages"][0]["content"] == long_text
    plain, _ = await exports.read(cursor, 100, content=False)
    assert "payload" not in plain[0]


async def test_an_open_transaction_holds_export_back_on_postgresql(
    store: Store, org: str, backend: str, database_url: str
) -> None:
    """A log of a transaction that started first but commits last is read before the later ones: never
    skipped by a cursor that moved past them meanwhile."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: a commit's rowids follow every earlier commit")
    exports = _exports(store)
    cursor = await _claim(exports)
    slow = log_row(org)
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(
            "INSERT INTO logs (id, org_id, created_at, updated_at, save, status, sample_index)"
            " VALUES ($1, $2, now(), now(), true, 'complete', 0)",
            slow["id"],
            org,
        )
        # Another project: the open transaction holds its tally row (log_tallies) until it ends.
        fast = log_row(org, project_id=await store.project_by_name(org, "exports-fast"))
        await write(store, fast)
        assert (await _read_ids(exports, cursor))[0] == []  # the open transaction holds it back
        await transaction.commit()
    finally:
        await connection.close()
    assert (await _read_ids(exports, cursor))[0] == [slow["id"], fast["id"]]
    async with store.engine.connect() as check:
        xids = (await check.execute(text("SELECT count(*) FROM logs WHERE export_xid IS NULL"))).scalar()
    assert xids == 0
