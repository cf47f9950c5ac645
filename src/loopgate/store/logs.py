"""Log queries beyond the generation path: reading logs back whole (payload expanded, with project, session,
parent reference, config and feedback), the filtered and sorted list, updates, deletes, and tool configs.

Inserts still go through the group-commit writer (``Store.writer``); everything here is a read or a small
transaction on the pool. Every query is scoped to one organization.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate import ids
from loopgate.store import content, search, tables, tallies
from loopgate.store.evaluations import ResultRow
from loopgate.store.queries import in_chunks, insert_ignore

_logs = tables.logs
_parents = tables.logs.alias("parent_log")
# Up to this many stored blobs holding a search term are looked for one by one (each an index lookup);
# more, and the project's logs are read for references to any of them (see ``_search``).
_FEW_BLOBS = 200


@dataclass(slots=True)
class LogFilter:
    """What ``GET /logs`` narrows a project's logs by; every list means "any of these"."""

    project_id: str
    # Every stored config version is committed, so asking for uncommitted or deleted versions finds nothing.
    version_status: str | None = None
    search: str | None = None
    metadata_search: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    sources: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    feedback: dict[str, list[str]] = field(default_factory=dict)
    evaluators: dict[str, list[str]] = field(default_factory=dict)  # evaluator id -> result values


@dataclass(slots=True)
class LogSort:
    column: str  # timestamp | source | model | feedback-<type>
    descending: bool


def utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (SQLite hands them back naive); aware ones are converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def json_escaped(term: str) -> str:
    """The term as it appears inside a JSON string (quotes and backslashes escaped)."""
    return orjson.dumps(term).decode()[1:-1]


class LogStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # -- configs --------------------------------------------------------------------------------------------

    async def config_row(self, org_id: str, config_id: str) -> dict[str, Any] | None:
        query = select(tables.model_configs).where(
            tables.model_configs.c.org_id == org_id, tables.model_configs.c.id == config_id
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
        return dict(row) if row else None

    async def typed_config_id(
        self, org_id: str, project_id: str, config_hash: str, body: dict[str, Any], *, config_type: str
    ) -> str:
        """The project's ``tool`` or ``evaluator`` config with this body, created on first use
        (insert-if-absent)."""
        query = select(tables.model_configs.c.id).where(
            tables.model_configs.c.project_id == project_id, tables.model_configs.c.config_hash == config_hash
        )
        async with self._engine.begin() as connection:
            found = (await connection.execute(query)).scalar_one_or_none()
            if found is None:
                await connection.execute(
                    insert_ignore(connection, tables.model_configs),
                    {
                        "id": ids.new_id(ids.MODEL_CONFIG),
                        "org_id": org_id,
                        "project_id": project_id,
                        "config_hash": config_hash,
                        "name": body["name"],
                        "body": orjson.dumps(body).decode(),
                        "created_at": datetime.now(UTC),
                        "config_type": config_type,
                    },
                )
                found = (await connection.execute(query)).scalar_one()
        return str(found)

    # -- reference ids ------------------------------------------------------------------------------------

    async def taken_references(self, org_id: str, reference_ids: Sequence[str]) -> set[str]:
        taken: set[str] = set()
        async with self._engine.connect() as connection:
            for chunk in in_chunks(reference_ids):
                # IS NOT NULL: lets SQLite use the partial index uq_logs_org_reference (revision 0005).
                query = select(_logs.c.reference_id).where(
                    _logs.c.org_id == org_id,
                    _logs.c.reference_id.is_not(None),
                    _logs.c.reference_id.in_(chunk),
                )
                taken.update(str(value) for value in (await connection.execute(query)).scalars())
        return taken

    async def log_id_by_reference(self, org_id: str, reference_id: str) -> str | None:
        query = select(_logs.c.id).where(
            _logs.c.org_id == org_id, _logs.c.reference_id.is_not(None), _logs.c.reference_id == reference_id
        )
        async with self._engine.connect() as connection:
            found = (await connection.execute(query)).scalar_one_or_none()
        return str(found) if found is not None else None

    # -- reading logs whole -----------------------------------------------------------------------------

    def _whole(self) -> Select[Any]:
        """Log rows with the names a LogResponse shows next to the ids."""
        joined = (
            _logs.outerjoin(tables.projects, tables.projects.c.id == _logs.c.project_id)
            .outerjoin(tables.sessions, tables.sessions.c.id == _logs.c.session_id)
            .outerjoin(
                _parents, and_(_parents.c.id == _logs.c.parent_id, _parents.c.org_id == _logs.c.org_id)
            )
        )
        return select(
            _logs,
            tables.projects.c.name.label("project_name"),
            tables.sessions.c.reference_id.label("session_reference_id"),
            _parents.c.reference_id.label("parent_reference_id"),
        ).select_from(joined)

    async def fetch(self, org_id: str, log_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The organization's logs with these ids, in the order given (unknown ids are skipped)."""
        if not log_ids:
            return []
        found: dict[str, dict[str, Any]] = {}
        async with self._engine.connect() as connection:
            for chunk in in_chunks(log_ids):
                # By id alone, other organizations' rows dropped here: with ``org_id = ?`` in the WHERE,
                # a planner without statistics may walk an org-leading index over every log of the
                # organization instead of probing the primary key 50 times.
                query = self._whole().where(_logs.c.id.in_(chunk))
                for row in (await connection.execute(query)).mappings():
                    if row["org_id"] == org_id:
                        found[row["id"]] = dict(row)
            ordered = [found[log_id] for log_id in log_ids if log_id in found]
            await _hydrate(connection, ordered)
        return ordered

    async def page(
        self, org_id: str, where: LogFilter, sorts: list[LogSort], *, page: int, size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a project's logs, newest first unless ``sorts`` says otherwise, and the total."""
        async with self._engine.connect() as connection:
            conditions = [_logs.c.org_id == org_id, *await self.conditions(connection, where)]
            needs_config = any(sort.column == "model" for sort in sorts)
            base = _logs.outerjoin(tables.model_configs, tables.model_configs.c.id == _logs.c.config_id)
            total = await self._total(connection, org_id, where, conditions)
            order = self.order(sorts)
            query = (
                select(_logs.c.id)
                .select_from(base if needs_config else _logs)
                .where(*conditions)
                .order_by(*order)
                .limit(size)
                .offset(page * size)
            )
            page_ids = [str(value) for value in (await connection.execute(query)).scalars()]
        return await self.fetch(org_id, page_ids), total

    async def _total(
        self, connection: AsyncConnection, org_id: str, where: LogFilter, conditions: list[Any]
    ) -> int:
        """The exact number of matches. A project's logs, or those of some models, are sums of tally rows
        (tallies.py); any other filter counts the matching rows (never with the config join: the model
        filter is a subquery on config ids)."""
        narrowed = (
            where.search,
            where.metadata_search,
            where.start,
            where.end,
            where.sources,
            where.feedback,
            where.evaluators,
            where.version_status not in (None, "committed"),
        )
        if not any(narrowed):
            return await tallies.project_total(
                connection, org_id, where.project_id, self._model_configs(where) if where.models else None
            )
        counted = select(func.count()).select_from(_logs).where(*conditions)
        return int((await connection.execute(counted)).scalar_one())

    # -- changes ------------------------------------------------------------------------------------------

    async def update(self, org_id: str, log_id: str, values: dict[str, Any]) -> bool:
        statement = update(_logs).where(_logs.c.org_id == org_id, _logs.c.id == log_id).values(**values)
        async with self._engine.begin() as connection:
            changed = (await connection.execute(statement)).rowcount
        return bool(changed)

    async def delete(self, org_id: str, log_ids: Sequence[str]) -> list[str]:
        """Deletes the logs (and their feedback) if every id is one of the organization's; otherwise deletes
        nothing and returns the unknown ids. Children of a deleted log become roots (parent_id cleared), so
        a session still reads as a tree."""
        wanted = list(dict.fromkeys(log_ids))
        async with self._engine.begin() as connection:
            existing: set[str] = set()
            for chunk in in_chunks(wanted):
                # By primary key, organization checked here (see ``fetch``).
                query = select(_logs.c.id, _logs.c.org_id).where(_logs.c.id.in_(chunk))
                rows = (await connection.execute(query)).all()
                existing.update(str(log_id) for log_id, owner in rows if owner == org_id)
            missing = [log_id for log_id in wanted if log_id not in existing]
            if missing:
                return missing
            for chunk in in_chunks(wanted):
                await connection.execute(tables.feedback.delete().where(tables.feedback.c.log_id.in_(chunk)))
                await connection.execute(
                    update(_logs)
                    .where(_logs.c.org_id == org_id, _logs.c.parent_id.in_(chunk))
                    .values(parent_id=None)
                )
                # Every id was checked to be the organization's above: the primary key alone drives it.
                await connection.execute(_logs.delete().where(_logs.c.id.in_(chunk)))
        return []

    # -- filters and sorting ----------------------------------------------------------------------------

    def json_text(self, column: Any, key: str) -> ColumnElement[Any]:
        """``column`` (JSON text) -> the value at ``key``, as text."""
        if self._postgres:
            document: Any = cast(column, JSONB)
            text: ColumnElement[Any] = document[key].astext
            return text
        return func.json_extract(column, f"$.{key}")

    def order(self, sorts: Sequence[LogSort]) -> list[Any]:
        """ORDER BY terms: each sort's, then creation order, so that pages never overlap: newest first,
        unless the logs are sorted by time oldest first (the samples of one call keep their order)."""
        keys = [key for sort in sorts for key in self._sort_keys(sort)]
        by_time = next((sort for sort in sorts if sort.column == "timestamp"), None)
        if by_time is not None and not by_time.descending:
            return [*keys, _logs.c.created_at.asc(), _logs.c.id.asc()]
        return [*keys, _logs.c.created_at.desc(), _logs.c.id.desc()]

    def _sort_keys(self, sort: LogSort) -> list[Any]:
        keys: list[Any]
        if sort.column == "timestamp":
            keys = [_logs.c.created_at]
        elif sort.column == "source":
            keys = [_logs.c.source]
        elif sort.column == "model":
            keys = [self.json_text(tables.model_configs.c.body, "model")]
        else:
            # Feedback is stored as JSON text: numbers first, by value (so 9 before 10), then the rest
            # (labels, lists) by their text.
            feedback_type = sort.column.removeprefix("feedback-")
            keys = [_latest_feedback(feedback_type, self._json_number), _latest_feedback(feedback_type)]
        # Nulls last either way, the same on SQLite and PostgreSQL (their defaults differ).
        return [(key.desc() if sort.descending else key.asc()).nulls_last() for key in keys]

    def _json_number(self, value: Any) -> Any:
        """A JSON text column read as a number, NULL when it holds anything else."""
        if self._postgres:
            document = cast(value, JSONB)
            return case(
                (func.jsonb_typeof(document) == "number", cast(cast(document, Text), Float)),
                else_=null(),
            )
        return case((func.json_type(value).in_(("integer", "real")), cast(value, Float)), else_=null())

    async def conditions(self, connection: AsyncConnection, where: LogFilter) -> list[Any]:
        conditions: list[Any] = [_logs.c.project_id == where.project_id]
        if where.version_status not in (None, "committed"):
            conditions.append(false())
        if where.start is not None:
            conditions.append(_logs.c.created_at >= where.start)
        if where.end is not None:
            conditions.append(_logs.c.created_at < where.end)
        if where.sources:
            conditions.append(_logs.c.source.in_(where.sources))
        if where.models:
            # The project's few config versions of those models, then their logs by the config index:
            # reading the model out of each log's joined config would touch every log of the project.
            conditions.append(_logs.c.config_id.in_(self._model_configs(where)))
        for feedback_type, values in where.feedback.items():
            conditions.append(_logs.c.id.in_(_latest_feedback_among(feedback_type, _as_stored(values))))
        for evaluator_id, values in where.evaluators.items():
            conditions.append(_logs.c.id.in_(_judged_among(evaluator_id, values)))
        if where.metadata_search:
            pattern = like_pattern(json_escaped(where.metadata_search))
            conditions.append(_logs.c.metadata.ilike(pattern, escape="\\"))
        if where.search:
            matched, indexed = await self._search(connection, where.search)
            conditions.append(matched)
            if indexed:
                # SQLite, searched through logs_search: "+" keeps the project index out of the plan, so
                # the few candidate rowids drive the query. Without ANALYZE statistics SQLite otherwise
                # prefers the two equalities of the project index and probes every log of the project.
                conditions[0] = literal_column("+logs.project_id", Text) == where.project_id
        return conditions

    def _inputs_text(self) -> ColumnElement[Any]:
        """The log's inputs as text. On PostgreSQL the key is a literal, not a bound parameter, so the
        expression is the one ``ix_logs_inputs_trgm`` (revision 0005) indexes and the planner can use it."""
        if self._postgres:
            return literal_column("(CAST(logs.payload AS JSONB) ->> 'inputs')", Text)
        return self.json_text(_logs.c.payload, "inputs")

    def _model_configs(self, where: LogFilter) -> Select[Any]:
        """Ids of the project's config versions of the filter's models."""
        configs = tables.model_configs
        return select(configs.c.id).where(
            configs.c.project_id == where.project_id,
            self.json_text(configs.c.body, "model").in_(where.models),
        )

    async def _search(self, connection: AsyncConnection, term: str) -> tuple[Any, bool]:
        """Case-insensitive match on the output or the inputs. Inputs sit in the payload JSON, where long
        values are blob references: those are found by first looking the term up in ``blobs``.

        Both backends answer from trigram indexes for terms of 3+ characters (PostgreSQL: pg_trgm on the
        output, the inputs expression and blobs; SQLite: the FTS5 table ``logs_search``). The LIKE
        conditions below stay as the definition of a match: on SQLite the FTS5 lookup only narrows the
        rows they are tested on (its case folding is a superset of LIKE's), so results do not change.
        A term found in more than ``_FEW_BLOBS`` blobs (of any organization: blobs are shared) is matched
        by reading each of the project's logs for a reference to one of them: slower, never incomplete.
        Returns the condition and whether it goes through ``logs_search``."""
        inputs = self._inputs_text()
        escaped = json_escaped(term)
        matches: list[Any] = [
            _logs.c.output.ilike(like_pattern(term), escape="\\"),
            inputs.ilike(like_pattern(escaped), escape="\\"),
        ]
        holding = tables.blobs.c.data.ilike(like_pattern(term), escape="\\")
        blob_query = select(tables.blobs.c.hash).where(holding).limit(_FEW_BLOBS + 1)
        digests = [str(digest) for digest in (await connection.execute(blob_query)).scalars()]
        if len(digests) > _FEW_BLOBS:
            return or_(*matches, self._references_any(holding)), False
        matches += [inputs.like(like_pattern(digest), escape="\\") for digest in digests]
        condition = or_(*matches)
        if self._postgres or len(term) < search.MIN_TERM or not await search.available(connection):
            return condition, False
        candidates = search.candidates(
            [("output", term), ("inputs", escaped), *(("inputs", digest) for digest in digests)]
        )
        return and_(literal_column("logs.rowid").in_(candidates), condition), True

    def _references_any(self, holding: ColumnElement[bool]) -> ColumnElement[bool]:
        """Whether the log's inputs reference a blob for which ``holding`` is true, at any depth. The blobs
        are selected once (an uncorrelated subquery); each log's inputs are read as JSON."""
        if self._postgres:
            references = func.jsonb_path_query_array(
                cast(_logs.c.payload, JSONB), literal_column(f"'$.inputs.**.\"{content.REF_KEY}\"'")
            )
            digests = select(func.array_agg(tables.blobs.c.hash)).where(holding).scalar_subquery()
            return references.op("?|")(digests)
        matching = select(tables.blobs.c.hash).where(holding)
        node = func.json_tree(_logs.c.payload, "$.inputs").table_valued("key", "value").alias("node")
        return (
            select(literal_column("1"))
            .select_from(node)
            .where(node.c.key == content.REF_KEY, node.c.value.in_(matching))
            .exists()
        )


def _latest_feedback(feedback_type: str, reading: Callable[[Any], Any] | None = None) -> Any:
    """The log's most recent feedback value of this type (JSON text, or ``reading`` of it), or NULL."""
    recorded = tables.feedback.alias("latest_feedback")
    value = recorded.c.value if reading is None else reading(recorded.c.value)
    return (
        select(value)
        .where(recorded.c.log_id == _logs.c.id, recorded.c.type == feedback_type)
        .order_by(recorded.c.created_at.desc(), recorded.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _latest_feedback_among(feedback_type: str, values: list[str]) -> Any:
    """Ids of the logs whose most recent feedback of this type is one of ``values`` (``value_among``): a
    pass over that type's feedback rows (few), instead of a lookup per log of the project (many)."""
    recorded = tables.feedback.alias("recorded")
    newer = tables.feedback.alias("newer")
    superseded = (
        select(newer.c.id)
        .where(
            newer.c.log_id == recorded.c.log_id,
            newer.c.type == recorded.c.type,
            or_(
                newer.c.created_at > recorded.c.created_at,
                and_(newer.c.created_at == recorded.c.created_at, newer.c.id > recorded.c.id),
            ),
        )
        .exists()
    )
    return select(recorded.c.log_id).where(
        recorded.c.type == feedback_type, value_among(recorded.c.value, values), ~superseded
    )


def _judged_among(evaluator_id: str, values: list[str]) -> Any:
    """Ids of the logs with a result of this evaluator (in any evaluation) that is one of ``values``
    (``value_among``). A pass over the evaluator's results (``ix_evaluation_results_evaluator``)."""
    results = tables.evaluation_results
    return select(results.c.log_id).where(
        results.c.evaluator_id == evaluator_id, value_among(results.c.value, values)
    )


def value_among(stored: Any, values: list[str]) -> ColumnElement[bool]:
    """Whether a stored JSON value (feedback, an evaluator's result) is one of ``values`` read as a person
    types them: ``true``/``false``, a number (``5`` finds 5.0 and 10.0 finds 10), a label, or one label of
    a ``multi_select`` list. Plain comparisons, so an index on the value serves all but the lists."""
    matches: list[Any] = [stored.in_(_as_stored(values))]
    for value in values:  # a label among a list's: '"good"' inside '["good","fast"]'
        label = like_pattern(orjson.dumps(value).decode())
        matches.append(and_(stored.like("[%"), stored.like(label, escape="\\")))
    return or_(*matches)


def _as_stored(values: list[str]) -> list[str]:
    """What the values typed in a query may be stored as: feedback and results keep JSON, so the label
    "good" is '"good"', and true and 5 are 'true' and '5' (or '5.0', as a float is written)."""
    stored = {orjson.dumps(value).decode() for value in values} | set(values)
    for number in (number for number in map(_number, values) if number is not None):
        stored.add(orjson.dumps(number).decode())
        if number.is_integer() and abs(number) < 2**53:
            stored.add(orjson.dumps(int(number)).decode())
    return sorted(stored)


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


async def _hydrate(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Expands payloads and attaches ``config`` (the config row), ``feedback`` (rows, oldest first),
    ``batch_ids`` (the evaluation runs the log is a datapoint's log in) and ``evaluation_results`` (the
    results of evaluators on the log, as ResultRows, oldest first)."""
    payloads = [orjson.loads(row["payload"]) if row["payload"] else None for row in rows]
    refs: set[str] = set()
    for payload in payloads:
        if payload is not None:
            content.references(payload, refs)
    blobs: dict[str, str] = {}
    for chunk in in_chunks(sorted(refs)):
        query = select(tables.blobs.c.hash, tables.blobs.c.data).where(tables.blobs.c.hash.in_(chunk))
        blobs.update({str(digest): str(data) for digest, data in (await connection.execute(query)).all()})

    config_ids = sorted({row["config_id"] for row in rows if row["config_id"]})
    configs: dict[str, dict[str, Any]] = {}
    for chunk in in_chunks(config_ids):
        query = select(tables.model_configs).where(tables.model_configs.c.id.in_(chunk))
        configs.update({row["id"]: dict(row) for row in (await connection.execute(query)).mappings()})

    feedback: dict[str, list[dict[str, Any]]] = {}
    for chunk in in_chunks([row["id"] for row in rows]):
        query = (
            select(tables.feedback)
            .where(tables.feedback.c.log_id.in_(chunk))
            .order_by(tables.feedback.c.created_at, tables.feedback.c.id)
        )
        for item in (await connection.execute(query)).mappings():
            feedback.setdefault(item["log_id"], []).append(dict(item))

    # Only a log made for a datapoint can belong to an evaluation run, and have results: pages of other
    # logs skip both queries.
    batches: dict[str, list[str]] = {}
    results: dict[str, list[ResultRow]] = {}
    runs, judged = tables.evaluation_logs, tables.evaluation_results
    for chunk in in_chunks([row["id"] for row in rows if row["source_datapoint_id"]]):
        query = select(runs.c.log_id, runs.c.evaluation_id).where(runs.c.log_id.in_(chunk))
        for log_id, evaluation_id in await connection.execute(query.order_by(runs.c.created_at)):
            batches.setdefault(log_id, []).append(evaluation_id)
        query = select(judged).where(judged.c.log_id.in_(chunk)).order_by(judged.c.created_at, judged.c.id)
        for item in (await connection.execute(query)).mappings():
            results.setdefault(item["log_id"], []).append(ResultRow.from_mapping(item))

    for row, payload in zip(rows, payloads, strict=True):
        row["batch_ids"] = batches.get(row["id"], [])
        row["evaluation_results"] = results.get(row["id"], [])
        row["payload"] = content.expand(payload, blobs) if payload is not None else None
        row["metadata"] = orjson.loads(row["metadata"]) if row["metadata"] else None
        row["config"] = configs.get(row["config_id"]) if row["config_id"] else None
        row["feedback"] = feedback.get(row["id"], [])
