"""Evaluators, scoped to one organization: an id of another organization reads as absent.

Every update gives the evaluator a new ``version_id`` in the same statement that changes it, so a version id
always names exactly one set of fields (evaluation results record the version that produced them).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate import ids
from loopgate.store import tables
from loopgate.store.projects import utc  # not store/logs: the Catalog must not import PostgreSQL's dialect
from loopgate.store.repository import now

_E = tables.evaluators


@dataclass(frozen=True, slots=True)
class NewEvaluator:
    """An evaluator's fields as plain values; ``model_config`` is the JSON body of the request's config."""

    name: str
    description: str
    type: str
    arguments_type: str
    return_type: str
    code: str | None = None
    model_config: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EvaluatorRow:
    id: str
    org_id: str
    version_id: str
    name: str
    description: str
    type: str
    arguments_type: str
    return_type: str
    code: str | None
    model_config: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    logging_project_id: str | None = None  # where its judgments are logged, once it has made one

    @classmethod
    def from_mapping(cls, row: Any) -> "EvaluatorRow":
        config = row["model_config"]
        return cls(
            id=row["id"],
            org_id=row["org_id"],
            version_id=row["version_id"],
            name=row["name"],
            description=row["description"],
            type=row["type"],
            arguments_type=row["arguments_type"],
            return_type=row["return_type"],
            code=row["code"],
            model_config=orjson.loads(config) if config is not None else None,
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
            logging_project_id=row.get("logging_project_id"),
        )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    if "model_config" in fields:
        config = fields["model_config"]
        fields = {**fields, "model_config": orjson.dumps(config).decode() if config is not None else None}
    return fields


class InUse(Exception):
    """The row is referenced by an evaluation, so it was not deleted (the API answers 409)."""


class EvaluatorStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, org_id: str, item: NewEvaluator) -> EvaluatorRow:
        stamp = now()
        row = {
            "id": ids.new_id(ids.EVALUATOR),
            "org_id": org_id,
            "version_id": ids.new_id(ids.EVALUATOR_VERSION),
            "name": item.name,
            "description": item.description,
            "type": item.type,
            "arguments_type": item.arguments_type,
            "return_type": item.return_type,
            "code": item.code,
            "model_config": item.model_config,
            "created_at": stamp,
            "updated_at": stamp,
        }
        async with self._engine.begin() as connection:
            await connection.execute(_E.insert().values(**_columns(row)))
        return EvaluatorRow.from_mapping(_columns(row))

    async def _rows(self, query: Select[Any]) -> list[EvaluatorRow]:
        async with self._engine.connect() as connection:
            return [EvaluatorRow.from_mapping(row) for row in (await connection.execute(query)).mappings()]

    async def get(self, org_id: str, evaluator_id: str) -> EvaluatorRow | None:
        found = await self._rows(select(_E).where(_E.c.org_id == org_id, _E.c.id == evaluator_id))
        return found[0] if found else None

    async def many(self, org_id: str, evaluator_ids: Sequence[str]) -> dict[str, EvaluatorRow]:
        """evaluator id -> row, for those of these ids that are the organization's, in one query."""
        if not evaluator_ids:
            return {}
        query = select(_E).where(_E.c.org_id == org_id, _E.c.id.in_(list(evaluator_ids)))
        return {row.id: row for row in await self._rows(query)}

    async def by_version(self, org_id: str, version_id: str) -> EvaluatorRow | None:
        """The evaluator whose current version this is (earlier versions are not kept)."""
        found = await self._rows(select(_E).where(_E.c.org_id == org_id, _E.c.version_id == version_id))
        return found[0] if found else None

    async def of_org(self, org_id: str) -> list[EvaluatorRow]:
        """The organization's evaluators, oldest first."""
        return await self._rows(select(_E).where(_E.c.org_id == org_id).order_by(_E.c.created_at, _E.c.id))

    async def update(self, org_id: str, evaluator_id: str, **fields: Any) -> bool:
        """Sets the given fields (``model_config`` as a JSON-able dict or None) as a new version; False when
        the organization has no such evaluator. An empty update still commits a version: v4 says each
        update is one, and a caller cannot tell an empty one from a no-op."""
        statement = (
            update(_E)
            .where(_E.c.org_id == org_id, _E.c.id == evaluator_id)
            .values(**_columns(fields), version_id=ids.new_id(ids.EVALUATOR_VERSION), updated_at=now())
        )
        async with self._engine.begin() as connection:
            return bool((await connection.execute(statement)).rowcount)

    async def set_logging_project(self, org_id: str, evaluator_id: str, project_id: str) -> None:
        """Names the project the evaluator's judgments are logged in. Not a new version: the evaluator's
        fields are unchanged."""
        statement = (
            update(_E)
            .where(_E.c.org_id == org_id, _E.c.id == evaluator_id)
            .values(logging_project_id=project_id)
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def delete(self, org_id: str, evaluator_id: str) -> bool:
        """False when the organization has no such evaluator; raises InUse (deleting nothing) while an
        evaluation uses it, since its results and aggregates name it. One statement, so an evaluation
        created meanwhile is either seen or refused by its foreign key."""
        used = exists().where(tables.evaluation_evaluators.c.evaluator_id == evaluator_id)
        statement = delete(_E).where(_E.c.org_id == org_id, _E.c.id == evaluator_id, ~used)
        try:
            async with self._engine.begin() as connection:
                if (await connection.execute(statement)).rowcount:
                    return True
        except IntegrityError:
            # PostgreSQL: an evaluation naming it committed after this statement's snapshot was taken.
            raise InUse(evaluator_id) from None
        if await self.get(org_id, evaluator_id) is not None:
            raise InUse(evaluator_id)
        return False
