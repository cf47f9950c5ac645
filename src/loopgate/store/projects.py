"""Projects of an organization: create, read, page through, update, delete.

Every query is scoped by ``org_id``: an id from another organization reads as absent. Deleting a project
deletes what only it owns -- its logs (and their feedback), deployments, config versions and evaluations;
sessions are shared across projects and stay, and so do datasets: v4 made them files of their own ("datasets
do not belong to projects"), their datapoints are copies that need nothing of the project, so deleting a
project detaches them (``project_id`` cleared, shown as "") instead of destroying data nobody asked to delete.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate import ids
from loopgate.errors import ConflictError
from loopgate.store import tables, tallies
from loopgate.store.repository import now

_P = tables.projects


def utc(stamp: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: str
    org_id: str
    name: str
    created_at: datetime
    updated_at: datetime
    # The project's own FeedbackTypeModel documents (custom types, or overrides of a default's labels).
    feedback_types: list[dict[str, Any]]
    directory_id: str | None

    @classmethod
    def from_mapping(cls, row: Any) -> "ProjectRow":
        return cls(
            id=row["id"],
            org_id=row["org_id"],
            name=row["name"],
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
            feedback_types=orjson.loads(row["feedback_types"]) if row["feedback_types"] else [],
            directory_id=row["directory_id"],
        )


def _duplicate(name: str) -> ConflictError:
    return ConflictError(f"A project named '{name}' already exists in this organization")


class ProjectStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _one(self, query: Select[Any]) -> ProjectRow | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
        return ProjectRow.from_mapping(row) if row else None

    async def get(self, org_id: str, project_id: str) -> ProjectRow | None:
        return await self._one(select(_P).where(_P.c.org_id == org_id, _P.c.id == project_id))

    async def by_name(self, org_id: str, name: str) -> ProjectRow | None:
        return await self._one(select(_P).where(_P.c.org_id == org_id, _P.c.name == name))

    async def create(
        self,
        org_id: str,
        name: str,
        directory_id: str | None,
        feedback_types: list[dict[str, Any]] | None = None,
    ) -> ProjectRow:
        stamp = now()
        row = {
            "id": ids.new_id(ids.PROJECT),
            "org_id": org_id,
            "name": name,
            "created_at": stamp,
            "updated_at": stamp,
            "feedback_types": orjson.dumps(feedback_types).decode() if feedback_types else None,
            "directory_id": directory_id,
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(_P.insert(), row)
        except IntegrityError as exc:  # the (org_id, name) unique key: a concurrent create also lands here
            raise _duplicate(name) from exc
        return ProjectRow.from_mapping(row)

    async def page(
        self,
        org_id: str,
        *,
        name_filter: str | None,
        sort_by: str,
        descending: bool,
        page: int,
        size: int,
    ) -> tuple[list[ProjectRow], int]:
        condition = _P.c.org_id == org_id
        if name_filter:
            condition = condition & func.lower(_P.c.name).contains(name_filter.lower(), autoescape=True)
        # Names as people read them (alpha, Beta, gamma), the same on both backends whatever the collation;
        # the exact name and the id keep the order total.
        columns = [func.lower(_P.c.name), _P.c.name] if sort_by == "name" else [_P.c[sort_by]]
        order = [column.desc() if descending else column.asc() for column in [*columns, _P.c.id]]
        query = select(_P).where(condition).order_by(*order).offset(page * size).limit(size)
        async with self._engine.connect() as connection:
            total = (await connection.execute(select(func.count()).select_from(_P).where(condition))).scalar()
            rows = (await connection.execute(query)).mappings().all()
        return [ProjectRow.from_mapping(row) for row in rows], int(total or 0)

    async def update(self, org_id: str, project_id: str, **values: Any) -> None:
        """Sets the given columns (``name``, ``directory_id``, ``feedback_types`` as a list) and
        ``updated_at``."""
        if "feedback_types" in values:
            values["feedback_types"] = orjson.dumps(values["feedback_types"]).decode()
        values["updated_at"] = now()
        statement = update(_P).where(_P.c.org_id == org_id, _P.c.id == project_id).values(**values)
        try:
            async with self._engine.begin() as connection:
                await connection.execute(statement)
        except IntegrityError as exc:
            raise _duplicate(str(values.get("name"))) from exc

    async def delete(self, org_id: str, project_id: str) -> None:
        logs = select(tables.logs.c.id).where(tables.logs.c.project_id == project_id)
        async with self._engine.begin() as connection:
            await connection.execute(delete(tables.feedback).where(tables.feedback.c.log_id.in_(logs)))
            await connection.execute(delete(tables.logs).where(tables.logs.c.project_id == project_id))
            # Its tally rows are all zero now (the delete trigger counted the logs out): drop them.
            await connection.execute(
                delete(tables.log_tallies).where(tables.log_tallies.c.project_id == project_id)
            )
            await connection.execute(
                delete(tables.deployments).where(tables.deployments.c.project_id == project_id)
            )
            # Its evaluations go with it: they evaluate its configs and their logs were its logs.
            evaluations = select(tables.evaluations.c.id).where(tables.evaluations.c.project_id == project_id)
            for child in (tables.evaluation_results, tables.evaluation_logs, tables.evaluation_evaluators):
                await connection.execute(delete(child).where(child.c.evaluation_id.in_(evaluations)))
            await connection.execute(
                delete(tables.evaluations).where(tables.evaluations.c.project_id == project_id)
            )
            await connection.execute(
                delete(tables.model_configs).where(tables.model_configs.c.project_id == project_id)
            )
            await connection.execute(
                update(tables.datasets)
                .where(tables.datasets.c.project_id == project_id)
                .values(project_id=None)
            )
            await connection.execute(delete(_P).where(_P.c.org_id == org_id, _P.c.id == project_id))

    async def log_counts(self, project_ids: list[str]) -> dict[str, int]:
        """project id -> its number of logs, from the tallies (counting would read every log)."""
        if not project_ids:
            return {}
        async with self._engine.connect() as connection:
            return await tallies.by_project(connection, project_ids)
