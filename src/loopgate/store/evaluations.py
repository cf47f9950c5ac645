"""Evaluations the client runs itself, scoped to one organization: an id of another organization reads as
absent. An evaluation pins its dataset's version at creation; its snapshot is the datapoints added up to that
version (``datapoints.version``), so datapoints added later never join a run that already started.

A project's runs are listed by ``of_project``: narrowed by an ``EvaluationFilter`` and ordered by
``EvaluationSort`` keys, both in SQL, so a page and its total agree with whatever was asked.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, case, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate import ids
from loopgate.store import tables
from loopgate.store.datasets import DatapointRow
from loopgate.store.projects import utc  # not store/logs: the Catalog must not import PostgreSQL's dialect
from loopgate.store.queries import storable
from loopgate.store.repository import now

_V = tables.evaluations
_VE = tables.evaluation_evaluators
_VL = tables.evaluation_logs
_VR = tables.evaluation_results
_D = tables.datasets
_P = tables.datapoints
_C = tables.model_configs
# ``status`` sorts in the order of a run's life (v4's EvaluationStatus lists them so), not alphabetically.
_STATUS_ORDER = {"pending": 0, "running": 1, "completed": 2, "cancelled": 3}
# A result's value: v4's results carry a boolean or a number; an llm evaluator's ``select`` gives a string,
# ``multi_select`` a list of strings and ``text`` a string (EvaluationResultResponse.value allows all four).
Judgment = bool | int | float | str | list[str]


@dataclass(frozen=True, slots=True)
class EvaluationRow:
    id: str
    org_id: str
    project_id: str
    config_id: str
    dataset_id: str
    dataset_version: int
    name: str | None
    status: str
    evaluator_ids: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    hl_generated: bool = False  # loopgate generates the logs and runs the llm evaluators
    generated_at: datetime | None = None  # when loopgate's part of a generated run was last finished


@dataclass(frozen=True, slots=True)
class ResultRow:
    id: str
    evaluation_id: str
    log_id: str
    evaluator_id: str
    evaluator_version_id: str
    value: Judgment | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    evaluator_log_id: str | None = None  # the judgment's log, for the evaluators loopgate runs

    @classmethod
    def from_mapping(cls, row: Any) -> "ResultRow":
        return cls(
            id=row["id"],
            evaluation_id=row["evaluation_id"],
            log_id=row["log_id"],
            evaluator_id=row["evaluator_id"],
            evaluator_version_id=row["evaluator_version_id"],
            value=orjson.loads(row["value"]) if row["value"] is not None else None,
            error=row["error"],
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
            evaluator_log_id=row["evaluator_log_id"],
        )


@dataclass(slots=True)
class EvaluationFilter:
    """What a list of a project's runs is narrowed by. Each non-empty list means "any of these", and every
    given one narrows further. Datasets and configs are named by id or by name."""

    evaluation_ids: list[str] = field(default_factory=list)
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    datasets: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EvaluationSort:
    column: str  # dataset | config | status | evaluator-<evaluator id>
    descending: bool


def _conditions(org_id: str, project_id: str, where: EvaluationFilter) -> list[ColumnElement[bool]]:
    conditions = [_V.c.org_id == org_id, _V.c.project_id == project_id]
    if where.evaluation_ids:
        conditions.append(_V.c.id.in_(where.evaluation_ids))
    if where.start is not None:
        conditions.append(_V.c.created_at >= where.start)
    if where.end is not None:
        conditions.append(_V.c.created_at < where.end)
    if where.datasets:
        named = select(_D.c.id).where(_D.c.org_id == org_id, _D.c.name.in_(where.datasets))
        conditions.append(or_(_V.c.dataset_id.in_(where.datasets), _V.c.dataset_id.in_(named)))
    if where.configs:
        named = select(_C.c.id).where(_C.c.project_id == project_id, _C.c.name.in_(where.configs))
        conditions.append(or_(_V.c.config_id.in_(where.configs), _V.c.config_id.in_(named)))
    if where.statuses:
        conditions.append(_V.c.status.in_(where.statuses))
    return conditions


def _sort_keys(sort: EvaluationSort) -> list[Any]:
    """The ORDER BY terms of one sort. Names are followed by their row's id, so two datasets (or configs)
    of one name stay apart; a run without a result of the evaluator sorts last either way."""
    keys: list[Any]
    if sort.column == "dataset":
        keys = [select(_D.c.name).where(_D.c.id == _V.c.dataset_id).scalar_subquery(), _V.c.dataset_id]
    elif sort.column == "config":
        keys = [select(_C.c.name).where(_C.c.id == _V.c.config_id).scalar_subquery(), _V.c.config_id]
    elif sort.column == "status":
        keys = [case(_STATUS_ORDER, value=_V.c.status, else_=len(_STATUS_ORDER))]
    else:
        keys = [_mean_score(sort.column.removeprefix("evaluator-"))]
    # Nulls last either way, the same on SQLite and PostgreSQL (their defaults differ).
    return [(key.desc() if sort.descending else key.asc()).nulls_last() for key in keys]


def _mean_score(evaluator_id: str) -> Any:
    """The run's aggregate_value for the evaluator (see ``aggregates_of``), per run in the outer query."""
    return (
        select(func.avg(_VR.c.score))
        .where(_VR.c.evaluation_id == _V.c.id, _VR.c.evaluator_id == evaluator_id, _VR.c.score.is_not(None))
        .scalar_subquery()
    )


def _score(value: Judgment | None) -> float | None:
    """The value as a number for the aggregates; strings and lists have none."""
    return float(value) if isinstance(value, bool | int | float) else None


async def _means(
    connection: AsyncConnection, group: ColumnElement[Any], *where: ColumnElement[bool]
) -> dict[str, dict[str, float]]:
    """group key (``group``, a column of the results or of their evaluation) -> evaluator id -> the mean of
    its numeric results among the results ``where`` selects (true 1, false 0): v4's aggregate_value. Errors
    and evaluators without a result are left out. Both the aggregates of a run and of a config come from
    here, so they always agree."""
    query = (
        select(group, _VR.c.evaluator_id, func.avg(_VR.c.score))
        .select_from(_VR.join(_V, _V.c.id == _VR.c.evaluation_id))
        .where(_VR.c.score.is_not(None), *where)
        .group_by(group, _VR.c.evaluator_id)
    )
    means: dict[str, dict[str, float]] = {}
    for key, evaluator_id, mean in (await connection.execute(query)).all():
        means.setdefault(str(key), {})[str(evaluator_id)] = float(mean)
    return means


async def _evaluator_ids(connection: AsyncConnection, evaluation_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {key: [] for key in evaluation_ids}
    if evaluation_ids:
        query = (
            select(_VE.c.evaluation_id, _VE.c.evaluator_id)
            .where(_VE.c.evaluation_id.in_(list(evaluation_ids)))
            .order_by(_VE.c.evaluation_id, _VE.c.position)
        )
        for evaluation_id, evaluator_id in (await connection.execute(query)).all():
            found[str(evaluation_id)].append(str(evaluator_id))
    return found


class EvaluationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        org_id: str,
        *,
        project_id: str,
        config_id: str,
        dataset_id: str,
        evaluator_ids: Sequence[str],
        name: str | None,
        runner: str | None = None,
        lease_seconds: float = 0.0,
    ) -> EvaluationRow | None:
        """The new evaluation, pinned to the dataset's current version; None when the dataset or the project
        was deleted meanwhile (the insert reads the version and checks both in one statement).

        The client's run starts ``running``. With ``runner`` (the owner name of this process's
        ``EvaluationRunner``), loopgate generates it: it starts ``pending`` with the lease already held, so
        the process that took the request (and holds its provider keys) is the one that runs it."""
        stamp = now()
        evaluation_id = ids.new_id(ids.EVALUATION)
        fixed = {
            "id": evaluation_id,
            "org_id": org_id,
            "project_id": project_id,
            "config_id": config_id,
            "dataset_id": dataset_id,
            "name": name,
            "status": "running" if runner is None else "pending",
            "created_at": stamp,
            "updated_at": stamp,
            "hl_generated": runner is not None,
            "owner": runner,
            "lease_until": time.time() + lease_seconds if runner is not None else 0.0,
        }
        columns = [literal(value, _V.c[key].type).label(key) for key, value in fixed.items()]
        project = tables.projects
        values = select(*columns, _D.c.version.label("dataset_version")).where(
            _D.c.org_id == org_id,
            _D.c.id == dataset_id,
            # a project deleted a moment before leaves no evaluation behind (as datasets do)
            exists().where(project.c.org_id == org_id, project.c.id == project_id),
        )
        try:
            async with self._engine.begin() as connection:
                statement = _V.insert().from_select([*fixed, "dataset_version"], values)
                if (await connection.execute(statement)).rowcount != 1:
                    return None
                if evaluator_ids:  # an empty parameter list would insert one row of NULLs
                    await connection.execute(
                        _VE.insert(),
                        [
                            {
                                "evaluation_id": evaluation_id,
                                "evaluator_id": evaluator_id,
                                "position": position,
                            }
                            for position, evaluator_id in enumerate(evaluator_ids)
                        ],
                    )
        except IntegrityError:
            return None  # PostgreSQL: the dataset, config or project was deleted while this inserted
        return await self.get(org_id, evaluation_id)

    async def _rows(self, query: Select[Any]) -> list[EvaluationRow]:
        async with self._engine.connect() as connection:
            rows = list((await connection.execute(query)).mappings())
            evaluators = await _evaluator_ids(connection, [row["id"] for row in rows])
        return [
            EvaluationRow(
                id=row["id"],
                org_id=row["org_id"],
                project_id=row["project_id"],
                config_id=row["config_id"],
                dataset_id=row["dataset_id"],
                dataset_version=int(row["dataset_version"]),
                name=row["name"],
                status=row["status"],
                evaluator_ids=tuple(evaluators[row["id"]]),
                created_at=utc(row["created_at"]),
                updated_at=utc(row["updated_at"]),
                hl_generated=bool(row["hl_generated"]),
                generated_at=utc(row["generated_at"]) if row["generated_at"] is not None else None,
            )
            for row in rows
        ]

    async def get(self, org_id: str, evaluation_id: str) -> EvaluationRow | None:
        found = await self._rows(select(_V).where(_V.c.org_id == org_id, _V.c.id == evaluation_id))
        return found[0] if found else None

    async def of_project(
        self,
        org_id: str,
        project_id: str,
        *,
        where: EvaluationFilter | None = None,
        sorts: Sequence[EvaluationSort] = (),
        page: int | None = None,
        size: int | None = None,
        newest_first: bool = False,
    ) -> tuple[list[EvaluationRow], int]:
        """The project's evaluations that match ``where``, ordered by ``sorts`` and then oldest first
        (newest first given ``newest_first``), a page of them given ``page`` and ``size``, and how many
        match. The creation order breaks every tie, so pages never overlap."""
        conditions = _conditions(org_id, project_id, where or EvaluationFilter())
        order = [key for sort in sorts for key in _sort_keys(sort)]
        order += [_V.c.created_at.desc(), _V.c.id.desc()] if newest_first else [_V.c.created_at, _V.c.id]
        query = select(_V).where(*conditions).order_by(*order)
        if page is not None and size is not None:
            query = query.offset(page * size).limit(size)
        rows = await self._rows(query)
        async with self._engine.connect() as connection:
            total = (
                await connection.execute(select(func.count()).select_from(_V).where(*conditions))
            ).scalar_one()
        return rows, int(total)

    async def set_status(self, org_id: str, evaluation_id: str, status: str) -> bool:
        statement = (
            update(_V)
            .where(_V.c.org_id == org_id, _V.c.id == evaluation_id)
            .values(status=status, updated_at=now())
        )
        async with self._engine.begin() as connection:
            return bool((await connection.execute(statement)).rowcount)

    async def add_evaluators(self, org_id: str, evaluation_id: str, evaluator_ids: Sequence[str]) -> bool:
        """Appends the evaluators the evaluation does not have yet; False when there is no such evaluation."""
        async with self._engine.begin() as connection:
            touched = (
                update(_V).where(_V.c.org_id == org_id, _V.c.id == evaluation_id).values(updated_at=now())
            )
            if (await connection.execute(touched)).rowcount == 0:  # also the lock, before reading positions
                return False
            have = (await _evaluator_ids(connection, [evaluation_id]))[evaluation_id]
            new = [key for key in dict.fromkeys(evaluator_ids) if key not in have]
            if new:
                await connection.execute(
                    _VE.insert(),
                    [
                        {"evaluation_id": evaluation_id, "evaluator_id": key, "position": len(have) + index}
                        for index, key in enumerate(new)
                    ],
                )
        return True

    # -- the snapshot -----------------------------------------------------------------------------------

    def _snapshot(self, row: EvaluationRow) -> Any:
        return and_(_P.c.dataset_id == row.dataset_id, _P.c.version <= row.dataset_version)

    async def snapshot_count(self, row: EvaluationRow) -> int:
        return (await self.snapshot_counts([row]))[row.id]

    async def snapshot_counts(self, rows: Sequence[EvaluationRow]) -> dict[str, int]:
        """evaluation id -> the datapoints in its snapshot, for a page of runs in one query: each dataset's
        datapoints counted per version, summed up to the version each run pinned."""
        dataset_ids = sorted({row.dataset_id for row in rows})
        per_version: dict[str, list[tuple[int, int]]] = {}
        if dataset_ids:
            query = (
                select(_P.c.dataset_id, _P.c.version, func.count())
                .where(_P.c.dataset_id.in_(dataset_ids))
                .group_by(_P.c.dataset_id, _P.c.version)
            )
            async with self._engine.connect() as connection:
                for dataset_id, version, count in (await connection.execute(query)).all():
                    per_version.setdefault(str(dataset_id), []).append((int(version), int(count)))
        return {
            row.id: sum(
                count
                for version, count in per_version.get(row.dataset_id, ())
                if version <= row.dataset_version
            )
            for row in rows
        }

    async def snapshot_page(self, row: EvaluationRow, *, offset: int, size: int) -> list[DatapointRow]:
        query = (
            select(_P)
            .where(self._snapshot(row))
            .order_by(_P.c.version, _P.c.position)
            .offset(offset)
            .limit(size)
        )
        async with self._engine.connect() as connection:
            return [
                DatapointRow.from_mapping(found) for found in (await connection.execute(query)).mappings()
            ]

    async def in_snapshot(self, row: EvaluationRow, datapoint_id: str) -> bool:
        query = select(_P.c.id).where(self._snapshot(row), _P.c.id == datapoint_id)
        async with self._engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    # -- logs and results -------------------------------------------------------------------------------

    async def log_of(self, evaluation_id: str, datapoint_id: str) -> str | None:
        query = select(_VL.c.log_id).where(
            _VL.c.evaluation_id == evaluation_id, _VL.c.datapoint_id == datapoint_id
        )
        async with self._engine.connect() as connection:
            found = (await connection.execute(query)).scalar_one_or_none()
        return str(found) if found is not None else None

    async def logs_of(self, evaluation_id: str, datapoint_ids: Sequence[str]) -> dict[str, str]:
        """datapoint id -> the log posted for it in this evaluation."""
        if not datapoint_ids:
            return {}
        query = select(_VL.c.datapoint_id, _VL.c.log_id).where(
            _VL.c.evaluation_id == evaluation_id, _VL.c.datapoint_id.in_(list(datapoint_ids))
        )
        async with self._engine.connect() as connection:
            return {str(datapoint): str(log) for datapoint, log in (await connection.execute(query)).all()}

    async def linked_count(self, evaluation_id: str) -> int:
        """How many of the run's datapoints have a log posted (each has at most one)."""
        query = select(func.count()).select_from(_VL).where(_VL.c.evaluation_id == evaluation_id)
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def has_log(self, evaluation_id: str, log_id: str) -> bool:
        query = select(_VL.c.log_id).where(_VL.c.evaluation_id == evaluation_id, _VL.c.log_id == log_id)
        async with self._engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    async def link_log(self, evaluation_id: str, datapoint_id: str, log_id: str) -> bool:
        """Records the log of a datapoint; False when the datapoint already has one in this evaluation."""
        row = {
            "evaluation_id": evaluation_id,
            "datapoint_id": datapoint_id,
            "log_id": log_id,
            "created_at": now(),
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(_VL.insert().values(**row))
        except IntegrityError:
            return False
        return True

    async def put_result(
        self,
        evaluation_id: str,
        *,
        log_id: str,
        evaluator_id: str,
        evaluator_version_id: str,
        value: Judgment | None,
        error: str | None,
        evaluator_log_id: str | None = None,
    ) -> ResultRow:
        """Records the evaluator's result for the log, replacing an earlier one of the same pair."""
        stamp = now()
        fields = {
            "evaluator_version_id": evaluator_version_id,
            "value": orjson.dumps(value).decode() if value is not None else None,
            "score": _score(value),
            "error": storable(error),  # a provider's words, in a judge's error, may hold a NUL
            "evaluator_log_id": evaluator_log_id,
            "updated_at": stamp,
        }
        pair = and_(
            _VR.c.evaluation_id == evaluation_id, _VR.c.log_id == log_id, _VR.c.evaluator_id == evaluator_id
        )
        for _attempt in range(2):
            try:
                async with self._engine.begin() as connection:
                    if (await connection.execute(update(_VR).where(pair).values(**fields))).rowcount == 0:
                        row = {
                            "id": ids.new_id(ids.EVALUATION_RESULT),
                            "evaluation_id": evaluation_id,
                            "log_id": log_id,
                            "evaluator_id": evaluator_id,
                            "created_at": stamp,
                            **fields,
                        }
                        await connection.execute(_VR.insert().values(**row))
                break
            except IntegrityError:
                continue  # a concurrent post inserted the pair first: update it instead
        async with self._engine.connect() as connection:
            found = (await connection.execute(select(_VR).where(pair))).mappings().one()
        return ResultRow.from_mapping(found)

    async def results(self, evaluation_id: str, log_ids: Sequence[str]) -> list[ResultRow]:
        if not log_ids:
            return []
        query = (
            select(_VR)
            .where(_VR.c.evaluation_id == evaluation_id, _VR.c.log_id.in_(list(log_ids)))
            .order_by(_VR.c.created_at, _VR.c.id)
        )
        async with self._engine.connect() as connection:
            return [ResultRow.from_mapping(row) for row in (await connection.execute(query)).mappings()]

    async def aggregates(self, evaluation_id: str) -> dict[str, float]:
        return (await self.aggregates_of([evaluation_id])).get(evaluation_id, {})

    async def aggregates_of(self, evaluation_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """evaluation id -> evaluator id -> its aggregate_value in that evaluation (see ``_means``)."""
        if not evaluation_ids:
            return {}
        async with self._engine.connect() as connection:
            return await _means(
                connection, _VR.c.evaluation_id, _VR.c.evaluation_id.in_(list(evaluation_ids))
            )

    async def aggregates_by_config(self, org_id: str, project_id: str) -> dict[str, dict[str, float | None]]:
        """config id -> evaluator id -> its aggregate_value over every evaluation of that config version in
        the project: the results of all those runs pooled (each result counts once, so a run with more
        results weighs more), None for an evaluator of those runs without a numeric result yet. Evaluators
        come in the order the runs have them, oldest run first; a config without a run is left out."""
        runs = (_V.c.org_id == org_id, _V.c.project_id == project_id)
        members = (
            select(_V.c.config_id, _VE.c.evaluator_id)
            .select_from(_V.join(_VE, _VE.c.evaluation_id == _V.c.id))
            .where(*runs)
            .order_by(_V.c.created_at, _V.c.id, _VE.c.position)
        )
        found: dict[str, dict[str, float | None]] = {}
        async with self._engine.connect() as connection:
            for config_id, evaluator_id in (await connection.execute(members)).all():
                found.setdefault(str(config_id), {}).setdefault(str(evaluator_id), None)
            means = await _means(connection, _V.c.config_id, *runs)
        for config_id, of_config in means.items():
            found.setdefault(config_id, {}).update(of_config)  # a result's evaluator is one of its run's
        return found
