"""Datasets and their datapoints, scoped to one organization: an id of another organization reads as absent.

A dataset row carries its exact ``datapoint_count`` and a ``version`` counter, both changed in the same
transaction as the datapoints. Every change starts with the UPDATE of the dataset row, which takes its row
lock (PostgreSQL) or the write lock (SQLite) first: concurrent additions to one dataset are serialized, so
versions never repeat and the count stays exact, and an addition racing a delete finds the dataset gone
rather than inserting rows that point at it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, delete, exists, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate import ids
from loopgate.store import tables
from loopgate.store.evaluators import InUse
from loopgate.store.projects import utc
from loopgate.store.queries import in_chunks
from loopgate.store.repository import now

_D = tables.datasets
_P = tables.datapoints


@dataclass(frozen=True, slots=True)
class DatasetRow:
    id: str
    org_id: str
    project_id: str | None
    name: str
    description: str
    datapoint_count: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_mapping(cls, row: Any) -> "DatasetRow":
        return cls(
            id=row["id"],
            org_id=row["org_id"],
            project_id=row["project_id"],
            name=row["name"],
            description=row["description"],
            datapoint_count=int(row["datapoint_count"]),
            version=int(row["version"]),
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
        )


@dataclass(frozen=True, slots=True)
class NewDatapoint:
    """What a datapoint holds, as plain JSON values (None when the request left a field out)."""

    inputs: dict[str, str] | None = None
    messages: list[dict[str, Any]] | None = None
    target: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DatapointRow:
    id: str
    dataset_id: str
    inputs: dict[str, str] | None
    messages: list[dict[str, Any]] | None
    target: dict[str, Any] | None

    @classmethod
    def from_mapping(cls, row: Any) -> "DatapointRow":
        return cls(
            id=row["id"],
            dataset_id=row["dataset_id"],
            inputs=_decode(row["inputs"]),
            messages=_decode(row["messages"]),
            target=_decode(row["target"]),
        )


class _Raced(Exception):
    """Datapoints read before a transaction were gone inside it."""


def _encode(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def _decode(text: str | None) -> Any:
    return orjson.loads(text) if text is not None else None


async def _bump(connection: AsyncConnection, org_id: str, dataset_id: str, added: int) -> int | None:
    """Counts ``added`` datapoints in (negative: out), commits a new version and returns it; None when the
    organization has no such dataset."""
    statement = (
        update(_D)
        .where(_D.c.org_id == org_id, _D.c.id == dataset_id)
        .values(
            datapoint_count=_D.c.datapoint_count + added,
            version=_D.c.version + 1,
            updated_at=now(),
        )
    )
    if (await connection.execute(statement)).rowcount == 0:
        return None
    version = (await connection.execute(select(_D.c.version).where(_D.c.id == dataset_id))).scalar_one()
    return int(version)


class DatasetStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- datasets ---------------------------------------------------------------------------------------

    async def create(self, org_id: str, project_id: str, name: str, description: str) -> DatasetRow | None:
        """The new dataset; None when the project was deleted meanwhile (its foreign key refused the row)."""
        stamp = now()
        row = {
            "id": ids.new_id(ids.DATASET),
            "org_id": org_id,
            "project_id": project_id,
            "name": name,
            "description": description,
            "datapoint_count": 0,
            "version": 0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        # One statement that inserts only while the project exists: a project deleted a moment before
        # leaves no dataset behind on either backend (PostgreSQL's foreign key also catches a delete that
        # commits during the insert).
        project = tables.projects
        values = select(*(literal(value, _D.c[name].type).label(name) for name, value in row.items())).where(
            exists().where(project.c.org_id == org_id, project.c.id == project_id)
        )
        try:
            async with self._engine.begin() as connection:
                inserted = (await connection.execute(_D.insert().from_select(list(row), values))).rowcount
        except IntegrityError:
            return None
        if inserted != 1:
            return None
        return DatasetRow.from_mapping(row)

    async def _rows(self, query: Select[Any]) -> list[DatasetRow]:
        async with self._engine.connect() as connection:
            return [DatasetRow.from_mapping(row) for row in (await connection.execute(query)).mappings()]

    async def get(self, org_id: str, dataset_id: str) -> DatasetRow | None:
        found = await self._rows(select(_D).where(_D.c.org_id == org_id, _D.c.id == dataset_id))
        return found[0] if found else None

    async def of_org(self, org_id: str, project_id: str | None = None) -> list[DatasetRow]:
        """The organization's datasets (only the project's, given one), oldest first."""
        query = select(_D).where(_D.c.org_id == org_id)
        if project_id is not None:
            query = query.where(_D.c.project_id == project_id)
        return await self._rows(query.order_by(_D.c.created_at, _D.c.id))

    async def update(self, org_id: str, dataset_id: str, **values: str) -> bool:
        """Sets ``name`` and/or ``description`` and ``updated_at``; False when there is no such dataset."""
        statement = (
            update(_D).where(_D.c.org_id == org_id, _D.c.id == dataset_id).values(**values, updated_at=now())
        )
        async with self._engine.begin() as connection:
            return bool((await connection.execute(statement)).rowcount)

    async def delete(self, org_id: str, dataset_id: str) -> bool:
        """Deletes the dataset with its datapoints; False when there is no such dataset. Raises InUse
        (deleting nothing) while an evaluation uses it: its snapshot is these datapoints."""
        try:
            async with self._engine.begin() as connection:
                if await _bump(connection, org_id, dataset_id, 0) is None:  # the lock, before the rows go
                    return False
                used = select(tables.evaluations.c.id).where(tables.evaluations.c.dataset_id == dataset_id)
                if (await connection.execute(used.limit(1))).first() is not None:
                    raise InUse(dataset_id)  # leaving the block rolls the version bump back
                await connection.execute(delete(_P).where(_P.c.dataset_id == dataset_id))
                await connection.execute(delete(_D).where(_D.c.id == dataset_id))
        except IntegrityError:
            # PostgreSQL: an evaluation of this dataset committed after the check above (its foreign key
            # refused the delete, and everything rolled back).
            raise InUse(dataset_id) from None
        return True

    # -- datapoints -------------------------------------------------------------------------------------

    async def add(
        self, org_id: str, dataset_id: str, items: Sequence[NewDatapoint]
    ) -> list[DatapointRow] | None:
        """Appends the datapoints as one new version of the dataset, in the order given; None when there is
        no such dataset. Nothing is written (and no version committed) for an empty list."""
        if not items:
            return [] if await self.get(org_id, dataset_id) is not None else None
        stamp = now()
        async with self._engine.begin() as connection:
            version = await _bump(connection, org_id, dataset_id, len(items))
            if version is None:
                return None
            rows = [
                {
                    "id": ids.new_id(ids.DATAPOINT),
                    "org_id": org_id,
                    "dataset_id": dataset_id,
                    "version": version,
                    "position": position,
                    "inputs": _encode(item.inputs),
                    "messages": _encode(item.messages),
                    "target": _encode(item.target),
                    "created_at": stamp,
                }
                for position, item in enumerate(items)
            ]
            await connection.execute(_P.insert(), rows)
        return [DatapointRow.from_mapping(row) for row in rows]

    async def page(
        self, org_id: str, dataset_id: str, *, page: int, size: int
    ) -> tuple[list[DatapointRow], int] | None:
        """One page (from 0) of the dataset's datapoints in the order they were added, and the total; None
        when there is no such dataset."""
        dataset = await self.get(org_id, dataset_id)
        if dataset is None:
            return None
        query = (
            select(_P)
            .where(_P.c.dataset_id == dataset_id)
            .order_by(_P.c.version, _P.c.position)
            .offset(page * size)
            .limit(size)
        )
        async with self._engine.connect() as connection:
            rows = [DatapointRow.from_mapping(row) for row in (await connection.execute(query)).mappings()]
        return rows, dataset.datapoint_count

    async def datapoint(self, org_id: str, datapoint_id: str) -> DatapointRow | None:
        query = select(_P).where(_P.c.org_id == org_id, _P.c.id == datapoint_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
        return DatapointRow.from_mapping(row) if row else None

    async def update_datapoint(
        self, org_id: str, datapoint_id: str, item: NewDatapoint, fields: set[str]
    ) -> bool:
        """Replaces the ``fields`` (of inputs, messages, target) of one datapoint, as a new version of its
        dataset; False when the organization has no such datapoint."""
        found = await self.datapoint(org_id, datapoint_id)
        if found is None:
            return False
        values = {field: _encode(getattr(item, field)) for field in fields}
        async with self._engine.begin() as connection:
            if await _bump(connection, org_id, found.dataset_id, 0) is None:
                return False
            if values:
                statement = update(_P).where(_P.c.id == datapoint_id).values(**values)
                if (await connection.execute(statement)).rowcount == 0:
                    return False  # deleted meanwhile: the version bump is rolled back with this
        return True

    async def delete_datapoints(self, org_id: str, datapoint_ids: Sequence[str]) -> list[str]:
        """Deletes the datapoints if every id is one of the organization's (each dataset's count and version
        follow); otherwise deletes nothing and returns the unknown ids."""
        wanted = list(dict.fromkeys(datapoint_ids))
        for _attempt in range(3):
            owners: dict[str, str] = {}
            async with self._engine.connect() as connection:
                for chunk in in_chunks(wanted):
                    query = select(_P.c.id, _P.c.dataset_id).where(_P.c.org_id == org_id, _P.c.id.in_(chunk))
                    rows = (await connection.execute(query)).all()
                    owners.update({str(key): str(dataset) for key, dataset in rows})
            missing = [key for key in wanted if key not in owners]
            if missing:
                return missing
            try:
                await self._delete_owned(org_id, owners)
            except _Raced:
                continue  # another request deleted some of them meanwhile: look again
            return []
        return wanted

    async def _delete_owned(self, org_id: str, owners: dict[str, str]) -> None:
        per_dataset: dict[str, list[str]] = {}
        for datapoint_id, dataset_id in owners.items():
            per_dataset.setdefault(dataset_id, []).append(datapoint_id)
        async with self._engine.begin() as connection:
            for dataset_id in sorted(per_dataset):  # one lock order, so two deletes never deadlock
                members = per_dataset[dataset_id]
                if await _bump(connection, org_id, dataset_id, -len(members)) is None:
                    raise _Raced
                for chunk in in_chunks(members):
                    statement = delete(_P).where(_P.c.dataset_id == dataset_id, _P.c.id.in_(chunk))
                    if (await connection.execute(statement)).rowcount != len(chunk):
                        raise _Raced  # leaving the block rolls the whole transaction back

    async def count_rows(self, dataset_id: str) -> int:
        """The datapoints stored for a dataset, counted (tests check ``datapoint_count`` against it)."""
        query = select(func.count()).select_from(_P).where(_P.c.dataset_id == dataset_id)
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())
