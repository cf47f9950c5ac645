"""Committed logs in commit order, behind a persisted cursor and a lease: what an exporter (today the OTLP
one, service/otlp_export.py) reads, and how it records what was delivered.

Commit order, not id or created_at order: both are chosen when a request starts, and a stream or a slow
upstream commits its log long after a faster request that started later. Revision 0008 has the details:

- SQLite: a log's rowid (one writer at a time, each new row gets the largest rowid + 1). The trigger
  ``logs_export_tail`` lowers the cursor and bumps its ``generation`` when the newest logs are deleted,
  since their rowids are then handed out again; ``advance`` refuses a batch read before that.
- PostgreSQL: ``(export_xid, id)``, read only below ``pg_snapshot_xmin(pg_current_snapshot())``: every
  transaction with a smaller id has ended, so no log can still appear below the cursor. A transaction left
  open anywhere in the cluster holds export back (never loses anything) until it ends.

The lease: the process that holds ``owner`` (until ``lease_until``) is the only one that exports, whatever
the number of workers or servers on the database; another takes over once it lapses. ``advance`` moves the
cursor only for the owner, and only from the position it read, so a process that lost the lease while it
was sending cannot move a cursor another process now drives.
"""

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Text, bindparam, cast, func, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate.store import content, tables
from loopgate.store.queries import in_chunks, insert_ignore

_logs = tables.logs
_cursors = tables.export_cursors
_rowid = literal_column("logs.rowid", BigInteger)
_xid = literal_column("logs.export_xid", Text)
# Every transaction below the snapshot's xmin has ended: its logs are all visible, or it rolled back.
_ENDED = text("logs.export_xid < pg_snapshot_xmin(pg_current_snapshot())")
# asyncpg has no codec for xid8: the position crosses the wire as text (a bigint holds any real xid8).
_AFTER = text(
    "(logs.export_xid, logs.id) > (CAST(CAST(:after_position AS TEXT) AS xid8), :after_log_id)"
).bindparams(bindparam("after_position", type_=Text), bindparam("after_log_id", type_=Text))
_PG_START = text("SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)")
_COLUMNS = [
    _logs.c[name]
    for name in (
        "id",
        "org_id",
        "project_id",
        "session_id",
        "parent_id",
        "reference_id",
        "config_id",
        "created_at",
        "source",
        "environment",
        "status",
        "sample_index",
        "finish_reason",
        "error",
        "prompt_tokens",
        "output_tokens",
        "provider_latency",
        "duration",
        "metadata",
    )
]
_MAX_DEPTH = 64  # parent links followed to find a session-less log's root (a cycle cannot hang it)
_MAX_CONFIGS = 10_000  # config versions remembered (they never change)
_READ_SLICE = 64  # rows converted between two turns of the event loop


def _never(_owner: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Cursor:
    """A place in commit order: after the log at ``position`` (and, on PostgreSQL, ``log_id``)."""

    position: int
    log_id: str
    generation: int


class ExportStore:
    def __init__(self, engine: AsyncEngine, name: str, *, lease_seconds: float = 30.0) -> None:
        self._engine = engine
        self._name = name
        self._lease = lease_seconds
        self._postgres = engine.dialect.name == "postgresql"
        self._configs: dict[str, dict[str, Any] | None] = {}

    # -- the cursor and the lease ---------------------------------------------------------------------

    async def claim(self, owner: str, *, abandoned: Callable[[str], bool] = _never) -> Cursor | None:
        """Takes (or keeps) the lease and returns the cursor; None while another process holds it (and
        ``abandoned`` does not say that holder is gone). The first claim ever starts the cursor at the
        newest committed log: what was logged before export was enabled is not sent."""
        now = time.time()
        lease = select(_cursors.c.owner, _cursors.c.lease_until).where(self._mine())
        async with self._engine.begin() as connection:
            # Read first: a process that only finds the lease held writes nothing (on SQLite a write, even
            # of no row, takes the database's write lock).
            found = (await connection.execute(lease)).first()
            if found is None:
                start = await self._newest(connection)
                stamp = datetime.now(UTC)
                row = {"name": self._name, "position": start, "log_id": "", "generation": 0}
                row |= {"owner": None, "lease_until": 0.0, "exported": 0, "dropped": 0, "updated_at": stamp}
                await connection.execute(insert_ignore(connection, _cursors), row)
                holder, until = None, 0.0
            else:
                holder, until = found
            if holder not in (None, owner) and until >= now and not abandoned(str(holder)):
                return None
            values: dict[str, Any] = {"owner": owner, "lease_until": now + self._lease}
            if not self._postgres:
                # Rowids above the newest log are handed out again: a cursor past it (the tail deleted
                # while no trigger was there to see it, or rowids renumbered) would skip new logs.
                values["position"] = func.min(_cursors.c.position, _newest_rowid())
            # Only if the lease is still as read: of two processes taking a lapsed lease, one wins.
            seen = _cursors.c.owner.is_(None) if holder is None else _cursors.c.owner == holder
            statement = update(_cursors).where(self._mine(), seen, _cursors.c.lease_until == until)
            if (await connection.execute(statement.values(**values))).rowcount != 1:
                return None
            query = select(_cursors.c.position, _cursors.c.log_id, _cursors.c.generation).where(self._mine())
            position, log_id, generation = (await connection.execute(query)).one()
        return Cursor(int(position), str(log_id), int(generation))

    async def renew(self, owner: str) -> bool:
        """Extends the lease; False when it was lost (another process took over)."""
        statement = (
            update(_cursors)
            .where(self._mine(), _cursors.c.owner == owner)
            .values(lease_until=time.time() + self._lease)
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def advance(self, owner: str, read: Cursor, to: Cursor, *, exported: int, dropped: int) -> bool:
        """Moves the cursor from ``read`` (where the batch was read from) to ``to`` and renews the lease.
        False, and nothing changes, when the lease was lost or the cursor moved meanwhile (on SQLite: the
        newest logs were deleted): the caller claims again and reads from wherever the cursor is."""
        statement = (
            update(_cursors)
            .where(
                self._mine(),
                _cursors.c.owner == owner,
                _cursors.c.position == read.position,
                _cursors.c.log_id == read.log_id,
                _cursors.c.generation == read.generation,
            )
            .values(
                position=to.position,
                log_id=to.log_id,
                exported=_cursors.c.exported + exported,
                dropped=_cursors.c.dropped + dropped,
                lease_until=time.time() + self._lease,
                updated_at=datetime.now(UTC),
            )
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def release(self, owner: str) -> None:
        """Gives the lease up (at shutdown), so a restarted or another process resumes at once."""
        statement = update(_cursors).where(self._mine(), _cursors.c.owner == owner)
        statement = statement.values(owner=None, lease_until=0.0)
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    def _mine(self) -> Any:
        return _cursors.c.name == self._name

    async def _newest(self, connection: AsyncConnection) -> int:
        if self._postgres:
            return int((await connection.execute(_PG_START)).scalar_one())
        return int((await connection.execute(select(_newest_rowid()))).scalar_one())

    # -- reading ------------------------------------------------------------------------------------------

    async def read(self, after: Cursor, limit: int, *, content: bool) -> tuple[list[dict[str, Any]], Cursor]:
        """Up to ``limit`` committed logs after ``after``, in commit order, and the cursor after the last
        one (``after`` itself when there are none). Each row has its columns, ``metadata`` decoded,
        ``config`` (the config version's body and ``config_type``, or None), ``trace_key`` and
        ``parent_trace_key`` (the session id, else the id of the session-less root log), and with
        ``content`` its ``payload`` expanded."""
        columns = [*_COLUMNS, _logs.c.payload] if content else _COLUMNS
        if self._postgres:
            position = cast(cast(_xid, Text), BigInteger).label("export_position")
            query = (
                select(position, *columns)
                .where(_ENDED, _AFTER)
                .order_by(_xid, _logs.c.id)
                .params(after_position=str(after.position), after_log_id=after.log_id)
            )
        else:
            position = _rowid.label("export_position")
            query = select(position, *columns).where(_rowid > after.position).order_by(_rowid)
        rows: list[dict[str, Any]] = []
        async with self._engine.connect() as connection:
            # In slices: converting a whole batch's rows at once held the event loop for ~10 ms.
            result = await connection.stream(query.limit(limit))
            async for part in result.mappings().partitions(_READ_SLICE):
                rows.extend(dict(row) for row in part)
            if not rows:
                return [], after
            await self._attach_configs(connection, rows)
            await _attach_trace_keys(connection, rows)
            if content:
                await _expand_payloads(connection, rows)
        for row in rows:
            row["metadata"] = orjson.loads(row["metadata"]) if row["metadata"] else None
            row["created_at"] = _utc(row["created_at"])
        last = rows[-1]
        end_id = str(last["id"]) if self._postgres else ""
        return rows, Cursor(int(last["export_position"]), end_id, after.generation)

    async def _attach_configs(self, connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        configs = tables.model_configs
        wanted = sorted({row["config_id"] for row in rows if row["config_id"]} - self._configs.keys())
        if len(self._configs) + len(wanted) > _MAX_CONFIGS:
            self._configs.clear()
        for chunk in in_chunks(wanted):
            query = select(configs.c.id, configs.c.body, configs.c.config_type).where(configs.c.id.in_(chunk))
            for config_id, body, config_type in (await connection.execute(query)).all():
                self._configs[str(config_id)] = {**orjson.loads(body), "config_type": config_type}
        for row in rows:
            row["config"] = self._configs.get(row["config_id"]) if row["config_id"] else None


def _newest_rowid() -> Any:
    return select(func.coalesce(func.max(_rowid), 0)).select_from(_logs).scalar_subquery()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _attach_trace_keys(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """A log's trace is its session's; a log without one joins its parent's, up to the root log. The
    parents' own sessions are looked up too: a child that names another session than its parent's is in
    another trace, and the exporter links it to its parent instead of nesting it."""
    known: dict[str, tuple[str | None, str | None]] = {
        str(row["id"]): (row["session_id"], row["parent_id"]) for row in rows
    }
    wanted = {str(row["parent_id"]) for row in rows if row["parent_id"]} - known.keys()
    for _ in range(_MAX_DEPTH):
        if not wanted:
            break
        found: dict[str, tuple[str | None, str | None]] = {}
        for chunk in in_chunks(sorted(wanted)):
            query = select(_logs.c.id, _logs.c.session_id, _logs.c.parent_id).where(_logs.c.id.in_(chunk))
            found.update({str(i): (s, p) for i, s, p in (await connection.execute(query)).all()})
        known.update(found)
        # Further up only where no session has decided the trace yet.
        wanted = {str(p) for s, p in found.values() if s is None and p and str(p) not in known}

    def trace_key(log_id: str) -> str:
        current = log_id
        for _ in range(_MAX_DEPTH):
            session_id, parent_id = known.get(current, (None, None))
            if session_id:
                return str(session_id)
            if not parent_id:
                break
            current = str(parent_id)
        return current

    for row in rows:
        row["trace_key"] = trace_key(str(row["id"]))
        row["parent_trace_key"] = trace_key(str(row["parent_id"])) if row["parent_id"] else None


async def _expand_payloads(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    payloads = [orjson.loads(row["payload"]) if row["payload"] else None for row in rows]
    refs: set[str] = set()
    for payload in payloads:
        if payload is not None:
            content.references(payload, refs)
    # A blob pruned since the log was read (retention) reads as empty text rather than failing the batch.
    blobs: defaultdict[str, str] = defaultdict(str)
    for chunk in in_chunks(sorted(refs)):
        query = select(tables.blobs.c.hash, tables.blobs.c.data).where(tables.blobs.c.hash.in_(chunk))
        blobs.update({str(digest): str(data) for digest, data in (await connection.execute(query)).all()})
    for row, payload in zip(rows, payloads, strict=True):
        row["payload"] = content.expand(payload, blobs) if payload is not None else None
