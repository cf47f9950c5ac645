"""Reads the log browser needs beyond what the v4 services offer. They reuse the stores' tables and the
log list's filters (``LogStore``); every query is scoped to one organization or to projects already checked
to belong to it.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store import tables
from loopgate.store.logs import LogFilter, LogSort, LogStore, utc, value_among

_logs = tables.logs


async def last_activity(engine: AsyncEngine, project_ids: list[str]) -> dict[str, datetime]:
    """project id -> time of its newest log. One correlated max() per project: each is a single probe of
    the ``(project_id, created_at)`` index, where a GROUP BY would read every log of the projects."""
    if not project_ids:
        return {}
    projects = tables.projects
    newest = select(func.max(_logs.c.created_at)).where(_logs.c.project_id == projects.c.id).scalar_subquery()
    query = select(projects.c.id, newest).where(projects.c.id.in_(project_ids))
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {str(project_id): utc(latest) for project_id, latest in rows if latest is not None}


@dataclass(slots=True)
class BrowserFilter:
    """The v4 list filters plus the two only the browser offers: one config version, one session."""

    logs: LogFilter
    config_id: str | None = None
    session_id: str | None = None


class BrowserLogStore(LogStore):
    """The v4 log list without its total: counting every match of a filter over a million logs costs a
    full scan, while a page needs only ``size + 1`` ids (the extra one says whether a next page exists)."""

    async def window(
        self, org_id: str, where: BrowserFilter, sort: LogSort, *, offset: int, size: int
    ) -> tuple[list[dict[str, Any]], bool]:
        async with self.engine.connect() as connection:
            conditions = [_logs.c.org_id == org_id, *await self.conditions(connection, where.logs)]
            if where.config_id:
                conditions.append(_logs.c.config_id == where.config_id)
            if where.session_id:
                conditions.append(_logs.c.session_id == where.session_id)
            conditions.extend(self._narrowing(org_id, where.logs))
            needs_config = bool(where.logs.models) or sort.column == "model"
            source = (
                _logs.outerjoin(tables.model_configs, tables.model_configs.c.id == _logs.c.config_id)
                if needs_config
                else _logs
            )
            order = self.order([sort])
            query = (
                select(_logs.c.id)
                .select_from(source)
                .where(*conditions)
                .order_by(*order)
                .limit(size + 1)
                .offset(offset)
            )
            found = [str(value) for value in (await connection.execute(query)).scalars()]
        return await self.fetch(org_id, found[:size]), len(found) > size

    def _narrowing(self, org_id: str, where: LogFilter) -> list[Any]:
        """Conditions implied by the model and feedback filters, added so the database can start from the
        few configs or feedback rows that match instead of testing every log of the project."""
        conditions: list[Any] = []
        configs, feedback = tables.model_configs, tables.feedback
        if where.models:
            model = self.json_text(configs.c.body, "model")
            matching = select(configs.c.id).where(
                configs.c.project_id == where.project_id, model.in_(where.models)
            )
            conditions.append(_logs.c.config_id.in_(matching))
        for feedback_type, values in where.feedback.items():
            rated = select(feedback.c.log_id).where(
                feedback.c.org_id == org_id,
                feedback.c.type == feedback_type,
                value_among(feedback.c.value, values),
            )
            conditions.append(_logs.c.id.in_(rated))
        return conditions


async def version_numbers(engine: AsyncEngine, project_ids: list[str]) -> dict[str, int]:
    """config id -> its version number in its project (1 for the oldest), as the pages label them."""
    if not project_ids:
        return {}
    configs = tables.model_configs
    query = (
        select(configs.c.id, configs.c.project_id)
        .where(configs.c.project_id.in_(project_ids))
        .order_by(configs.c.project_id, configs.c.created_at, configs.c.id)
    )
    numbers: dict[str, int] = {}
    seen: dict[str, int] = {}
    async with engine.connect() as connection:
        for config_id, project_id in await connection.execute(query):
            seen[project_id] = seen.get(project_id, 0) + 1
            numbers[str(config_id)] = seen[project_id]
    return numbers
