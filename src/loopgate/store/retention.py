"""Retention: delete logs older than a cutoff, with their feedback and the content blobs only they used.

Logs go in batches (``batch_size`` ids per transaction, oldest first), so the tables are never locked for
longer than one batch takes and the server keeps answering meanwhile. Children of a deleted log become roots
(``parent_id`` cleared), as with ``DELETE /logs``.

Blobs are shared between logs, so a blob goes only when no remaining log references it: the blobs the
deleted logs referenced are the candidates; one pass over the remaining payloads drops those still in use;
then, with new blob inserts held back (PostgreSQL: a table lock that conflicts with INSERT; SQLite: the
write lock), the logs written since that pass began are checked again and the rest are deleted. A log
written concurrently therefore never loses its content: either its blob is seen in use, or its writer
inserts the blob again after the delete.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate.store import tables
from loopgate.store.queries import in_chunks

_logs = tables.logs
# orjson writes a reference as {"$blob":"<hash>"}; a string that merely contains those characters is
# escaped (\"$blob\") and does not match -- a false match would only keep a blob, never drop one.
_REFERENCE = re.compile(r'"\$blob":"([0-9a-f]{32})"')
_SCAN_PAGE = 5000
# Logs whose updated_at is this close to the start of the reference scan are checked again under the lock:
# other processes' clocks may be a little behind ours.
_CLOCK_SLACK = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PruneResult:
    logs: int
    feedback: int
    blobs: int


def parse_age(text_value: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` -> a timedelta; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text_value)
    if match is None:
        raise ValueError(f"expected a number and a unit (s, m, h, d or w), like 30d: {text_value!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


async def prune(
    engine: AsyncEngine, *, before: datetime, project_id: str | None = None, batch_size: int = 5000
) -> PruneResult:
    """Deletes logs created before ``before`` (of one project, or all), their feedback, and the blobs no
    remaining log references."""
    candidates: set[str] = set()
    deleted_logs = deleted_feedback = 0
    while True:
        async with engine.begin() as connection:
            batch = await _delete_batch(connection, before, project_id, batch_size, candidates)
        deleted_logs += batch[0]
        deleted_feedback += batch[1]
        if batch[0] < batch_size:
            break
    deleted_blobs = await _delete_unreferenced(engine, candidates) if candidates else 0
    return PruneResult(deleted_logs, deleted_feedback, deleted_blobs)


async def _delete_batch(
    connection: AsyncConnection, before: datetime, project_id: str | None, size: int, candidates: set[str]
) -> tuple[int, int]:
    """One transaction: the ``size`` oldest logs before the cutoff, their feedback. (logs, feedback)."""
    query = select(_logs.c.id, _logs.c.payload).where(_logs.c.created_at < before)
    if project_id is not None:
        query = query.where(_logs.c.project_id == project_id)
    rows = (await connection.execute(query.order_by(_logs.c.created_at).limit(size))).all()
    ids = [str(row[0]) for row in rows]
    for _log_id, payload in rows:
        if payload:
            candidates.update(_REFERENCE.findall(payload))
    feedback = 0
    for chunk in in_chunks(ids):
        result = await connection.execute(tables.feedback.delete().where(tables.feedback.c.log_id.in_(chunk)))
        feedback += result.rowcount
        await connection.execute(update(_logs).where(_logs.c.parent_id.in_(chunk)).values(parent_id=None))
        await connection.execute(_logs.delete().where(_logs.c.id.in_(chunk)))
    return len(ids), feedback


async def _delete_unreferenced(engine: AsyncEngine, candidates: set[str]) -> int:
    scan_started = datetime.now(UTC)
    unused = set(candidates)
    after = ""
    async with engine.connect() as connection:
        while unused:  # keyset pages by id: each page is an index range, however large the table
            page = (
                await connection.execute(
                    select(_logs.c.id, _logs.c.payload)
                    .where(_logs.c.id > after)
                    .order_by(_logs.c.id)
                    .limit(_SCAN_PAGE)
                )
            ).all()
            if not page:
                break
            after = str(page[-1][0])
            for _log_id, payload in page:
                if payload:
                    unused.difference_update(_REFERENCE.findall(payload))
    if not unused:
        return 0
    async with engine.begin() as connection:
        await _hold_back_blob_inserts(connection)
        recent = select(_logs.c.payload).where(_logs.c.updated_at >= scan_started - _CLOCK_SLACK)
        for (payload,) in await connection.execute(recent):
            if payload:
                unused.difference_update(_REFERENCE.findall(payload))
        deleted = 0
        for chunk in in_chunks(sorted(unused)):
            result = await connection.execute(tables.blobs.delete().where(tables.blobs.c.hash.in_(chunk)))
            deleted += result.rowcount
    return deleted


async def _hold_back_blob_inserts(connection: AsyncConnection) -> None:
    """Until this transaction ends, no other transaction can insert a blob (nor commit one it inserted)."""
    if connection.dialect.name == "postgresql":
        # SHARE ROW EXCLUSIVE conflicts with the ROW EXCLUSIVE lock every INSERT takes, and waits for
        # writers that already hold it -- so their logs are committed before the check above runs.
        await connection.execute(text("LOCK TABLE blobs IN SHARE ROW EXCLUSIVE MODE"))
    else:
        # SQLite has one writer at a time: a write statement takes the database's write lock.
        await connection.execute(tables.blobs.delete().where(text("1 = 0")))
