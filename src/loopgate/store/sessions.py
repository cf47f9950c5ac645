"""Session queries: create, read, the sessions touching a project, and per-session summaries. Scoped to
one organization."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate import ids
from loopgate.store import tables

_logs = tables.logs
_sessions = tables.sessions


@dataclass(slots=True)
class SessionSummary:
    """What SessionResponse says about a session's logs."""

    datapoints_count: int = 0
    last_activity: datetime | None = None
    projects: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    first_log_id: str | None = None
    last_output: str | None = None


class SessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, org_id: str) -> str:
        session_id = ids.new_id(ids.SESSION)
        stamp = datetime.now(UTC)
        async with self._engine.begin() as connection:
            await connection.execute(
                _sessions.insert(),
                {
                    "id": session_id,
                    "org_id": org_id,
                    "reference_id": None,
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )
        return session_id

    async def get(self, org_id: str, session_id: str) -> dict[str, Any] | None:
        query = select(_sessions).where(_sessions.c.org_id == org_id, _sessions.c.id == session_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
        return dict(row) if row else None

    async def page_for_project(
        self, org_id: str, project_id: str, *, page: int, size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Sessions holding at least one log of the project, newest first; ``page`` counts from 1."""
        touches = exists().where(_logs.c.session_id == _sessions.c.id, _logs.c.project_id == project_id)
        conditions = [_sessions.c.org_id == org_id, touches]
        query = (
            select(_sessions)
            .where(*conditions)
            .order_by(_sessions.c.created_at.desc(), _sessions.c.id.desc())
            .limit(size)
            .offset((page - 1) * size)
        )
        async with self._engine.connect() as connection:
            counted = select(func.count()).select_from(_sessions).where(*conditions)
            total = int((await connection.execute(counted)).scalar_one())
            rows = [dict(row) for row in (await connection.execute(query)).mappings()]
        return rows, total

    async def log_ids(self, org_id: str, session_id: str) -> list[str]:
        """The session's logs, oldest first."""
        query = (
            select(_logs.c.id)
            .where(_logs.c.org_id == org_id, _logs.c.session_id == session_id)
            .order_by(_logs.c.created_at, _logs.c.id)
        )
        async with self._engine.connect() as connection:
            return [str(value) for value in (await connection.execute(query)).scalars()]

    async def summaries(self, org_id: str, session_ids: Sequence[str]) -> dict[str, SessionSummary]:
        summaries = {session_id: SessionSummary() for session_id in session_ids}
        if not session_ids:
            return summaries
        in_sessions = [_logs.c.org_id == org_id, _logs.c.session_id.in_(list(session_ids))]
        counts = (
            select(_logs.c.session_id, func.count(), func.max(_logs.c.updated_at))
            .where(*in_sessions)
            .group_by(_logs.c.session_id)
        )
        projects = (
            select(_logs.c.session_id, tables.projects.c.id, tables.projects.c.name)
            .join(tables.projects, tables.projects.c.id == _logs.c.project_id)
            .where(*in_sessions)
            .distinct()
            .order_by(tables.projects.c.name)
        )
        oldest_first = (_logs.c.created_at.asc(), _logs.c.id.asc())
        newest_first = (_logs.c.created_at.desc(), _logs.c.id.desc())
        ranked = (
            select(
                _logs.c.session_id,
                _logs.c.id,
                _logs.c.output,
                func.row_number().over(partition_by=_logs.c.session_id, order_by=oldest_first).label("first"),
                func.row_number().over(partition_by=_logs.c.session_id, order_by=newest_first).label("last"),
            )
            .where(*in_sessions)
            .subquery()
        )
        ends = select(ranked).where(or_(ranked.c.first == 1, ranked.c.last == 1))
        async with self._engine.connect() as connection:
            for session_id, count, latest in await connection.execute(counts):
                summaries[session_id].datapoints_count = int(count)
                summaries[session_id].last_activity = latest
            for session_id, project_id, name in await connection.execute(projects):
                summaries[session_id].projects.append((str(project_id), str(name)))
            for row in (await connection.execute(ends)).mappings():
                summary = summaries[row["session_id"]]
                if row["first"] == 1:
                    summary.first_log_id = row["id"]
                if row["last"] == 1:
                    summary.last_output = row["output"]
        return summaries
