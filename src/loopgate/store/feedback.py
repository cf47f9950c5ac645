"""Feedback rows and the project feedback types they are checked against. Scoped to one organization."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store import tables


@dataclass(slots=True)
class FeedbackChange:
    """One step of a feedback request: record ``row``, or (``row`` None) clear ``type`` on ``log_id``."""

    log_id: str
    type: str
    row: dict[str, Any] | None


class FeedbackStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def log_projects(self, org_id: str, log_ids: Sequence[str]) -> dict[str, str | None]:
        """log id -> project id, for the organization's logs among ``log_ids``."""
        found: dict[str, str | None] = {}
        wanted = sorted(set(log_ids))
        async with self._engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                query = select(tables.logs.c.id, tables.logs.c.project_id).where(
                    tables.logs.c.org_id == org_id, tables.logs.c.id.in_(wanted[start : start + 500])
                )
                found.update({str(log_id): project for log_id, project in (await connection.execute(query))})
        return found

    async def feedback_types(
        self, org_id: str, project_ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """project id -> its feedback types (FeedbackTypeModel dicts); a project without any maps to []."""
        wanted = sorted(set(project_ids))
        if not wanted:
            return {}
        query = select(tables.projects.c.id, tables.projects.c.feedback_types).where(
            tables.projects.c.org_id == org_id, tables.projects.c.id.in_(wanted)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        types: dict[str, list[dict[str, Any]]] = {project_id: [] for project_id in wanted}
        for project_id, encoded in rows:
            decoded = orjson.loads(encoded) if encoded else []
            types[str(project_id)] = [entry for entry in decoded if isinstance(entry, dict)]
        return types

    async def apply(self, changes: Sequence[FeedbackChange]) -> None:
        """All changes in one transaction, in order (so "set, then unset" in one batch ends unset)."""
        async with self._engine.begin() as connection:
            for change in changes:
                if change.row is None:
                    await connection.execute(
                        tables.feedback.delete().where(
                            tables.feedback.c.log_id == change.log_id, tables.feedback.c.type == change.type
                        )
                    )
                else:
                    await connection.execute(tables.feedback.insert(), change.row)
