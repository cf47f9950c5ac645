"""The logs group: ``POST /logs`` (one log or a batch), reading logs back, updates and deletes.

A batch is all or nothing: every item is checked and resolved before anything is written, and the rows go
to the group-commit writer in one hand-over (one transaction). Feedback carried by the logs is recorded
right after their commit (it references them).
"""

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from loopgate import ids
from loopgate.errors import ConflictError, NotFoundError, RequestInvalid
from loopgate.schemas.feedback import Feedback
from loopgate.schemas.logs import LogRequest, ModelConfigRequest, UpdateLogRequest
from loopgate.service import model_configs
from loopgate.service.feedback import FeedbackService, Loc
from loopgate.service.log_views import log_response, paginated
from loopgate.store import content
from loopgate.store.feedback import FeedbackStore
from loopgate.store.logs import LogFilter, LogSort, LogStore, utc
from loopgate.store.projects import ProjectStore
from loopgate.store.repository import Store


@dataclass(slots=True)
class _Resolved:
    """The ids a LogRequest resolves to."""

    project_id: str
    config_id: str
    session_id: str | None
    parent_id: str | None


def _check_pairs(item: LogRequest, loc: Loc) -> None:
    pairs = (
        ("project", "project_id"),
        ("session_id", "session_reference_id"),
        ("parent_id", "parent_reference_id"),
        ("config", "config_id"),
    )
    for first, second in pairs:
        if getattr(item, first) is not None and getattr(item, second) is not None:
            raise RequestInvalid([*loc, second], f"Give either {first} or {second}, not both")
    if item.config is None and item.config_id is None:
        raise RequestInvalid([*loc, "config"], "A log needs its config: give config (inline) or config_id")
    if item.project is None and item.project_id is None and item.config_id is None:
        raise RequestInvalid([*loc, "project"], "Give a project name (project) or an existing project_id")
    if item.project is not None and not item.project.strip():
        raise RequestInvalid([*loc, "project"], "Project name must not be empty")


def _feedback_locs(item: LogRequest, loc: Loc) -> list[tuple[Feedback, Loc]]:
    if isinstance(item.feedback, list):
        return [(entry, [*loc, "feedback", index]) for index, entry in enumerate(item.feedback)]
    return [(entry, [*loc, "feedback"]) for entry in item.feedback_items()]


def _row(org_id: str, item: LogRequest, resolved: _Resolved, blobs: dict[str, str]) -> dict[str, Any]:
    """The ``logs`` row, in the payload layout of /chat logs. With ``save=false`` nothing of inputs,
    messages, output, stdout or provider payloads is kept."""
    stamp = datetime.now(UTC)
    payload: str | None = None
    if item.save:
        document = {
            "inputs": item.inputs,
            "messages": [m.model_dump(mode="json", exclude_none=True) for m in item.messages]
            if item.messages is not None
            else None,
            "raw_output": None,
            "output_message": item.output_message.model_dump(mode="json", exclude_none=True)
            if item.output_message is not None
            else None,
            "tool_choice": None,
            "provider_request": item.provider_request,
            "provider_responses": [item.provider_response] if item.provider_response is not None else [],
            "logprobs": None,
        }
        payload = orjson.dumps(content.intern(document, blobs)).decode()
    return {
        "id": ids.new_id(ids.LOG),
        "org_id": org_id,
        "project_id": resolved.project_id,
        "session_id": resolved.session_id,
        "parent_id": resolved.parent_id,
        "reference_id": item.reference_id,
        "config_id": resolved.config_id,
        "created_at": utc(item.created_at) if item.created_at is not None else stamp,
        "updated_at": stamp,
        "source": item.source,
        "source_datapoint_id": item.source_datapoint_id,
        "environment": item.environment,
        "user": None,
        "save": item.save,
        "status": "error" if item.error else "complete",
        "sample_index": 0,
        "output": item.output if item.save else None,
        "finish_reason": None,
        "error": item.error,
        "prompt_tokens": item.prompt_tokens,
        "output_tokens": item.output_tokens,
        "provider_latency": None,
        "metadata": orjson.dumps(item.metadata).decode() if item.metadata is not None else None,
        "payload": payload,
        "judgment": orjson.dumps(item.judgment).decode() if item.judgment is not None else None,
        "stdout": item.stdout if item.save else None,
        "duration": item.duration,
        "prompt_cost": item.prompt_cost,
        "output_cost": item.output_cost,
        "provider_retries": None,
    }


class LogService:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._logs = LogStore(store.engine)
        self._feedback = FeedbackService(FeedbackStore(store.engine))

    # -- POST /logs -------------------------------------------------------------------------------------

    async def create(self, org_id: str, items: list[LogRequest], *, batch: bool) -> list[dict[str, Any]]:
        locs: list[Loc] = [["body", index] if batch else ["body"] for index in range(len(items))]
        for item, loc in zip(items, locs, strict=True):
            _check_pairs(item, loc)
        await self._check_references(org_id, items, locs)
        batch_references = {item.reference_id for item in items if item.reference_id}

        blobs: dict[str, str] = {}
        rows: list[dict[str, Any]] = []
        inline: list[tuple[str, Feedback]] = []
        for item, loc in zip(items, locs, strict=True):
            resolved = await self._resolve(org_id, item, loc, batch_references)
            feedback = _feedback_locs(item, loc)
            if feedback:
                await self._feedback.check_inline(org_id, resolved.project_id, feedback)
            row = _row(org_id, item, resolved, blobs)
            rows.append(row)
            inline.extend((row["id"], entry) for entry, _ in feedback)
        try:
            await self._store.writer.write_logs(rows, blobs)
        except (IntegrityError, sqlite3.IntegrityError) as exc:
            # The reference ids were free a moment ago: a concurrent request took one meanwhile.
            raise ConflictError("A reference_id of this request is already used by another log") from exc
        if inline:
            await self._feedback.record_inline(org_id, inline)
        return [
            {"id": row["id"], "project_id": row["project_id"], "session_id": row["session_id"]}
            for row in rows
        ]

    async def _check_references(self, org_id: str, items: list[LogRequest], locs: list[Loc]) -> None:
        """reference_id is unique per organization: reuse is a 409, within the batch or against the store."""
        seen: set[str] = set()
        for item in items:
            if item.reference_id is None:
                continue
            if item.reference_id in seen:
                raise ConflictError(f"reference_id '{item.reference_id}' appears twice in this request")
            seen.add(item.reference_id)
        taken = await self._logs.taken_references(org_id, sorted(seen))
        if taken:
            raise ConflictError(f"reference_id '{min(taken)}' is already used by another log")

    async def _resolve(
        self, org_id: str, item: LogRequest, loc: Loc, batch_references: set[str]
    ) -> _Resolved:
        """Lookups that can fail (404) run before anything is created (project, config, session)."""
        stored_config = None
        if item.config_id is not None:
            stored_config = await self._logs.config_row(org_id, item.config_id)
            if stored_config is None:
                raise NotFoundError(f"Config '{item.config_id}' not found")
        if item.project_id is not None and not await self._store.project_exists(org_id, item.project_id):
            raise NotFoundError(f"Project '{item.project_id}' not found")
        config_project = stored_config["project_id"] if stored_config is not None else None
        if config_project is not None and not await self._in_project(org_id, item, config_project):
            # As deploying it elsewhere is refused: the log would sit outside its config's project, where
            # neither the project's versions nor its model filter would find it.
            raise RequestInvalid([*loc, "config_id"], f"Config '{item.config_id}' belongs to another project")
        if item.session_id is not None and not await self._store.session_exists(org_id, item.session_id):
            raise NotFoundError(f"Session '{item.session_id}' not found")
        parent = None
        if item.parent_id is not None or item.parent_reference_id is not None:
            parent = await self._store.log_parent(
                org_id, log_id=item.parent_id, reference_id=item.parent_reference_id
            )
            if parent is None and item.parent_reference_id in batch_references:
                raise RequestInvalid(
                    [*loc, "parent_reference_id"],
                    "parent_reference_id cannot refer to a log created in the same request; "
                    "log the parent first",
                )
            if parent is None:
                wanted = item.parent_id or f"with reference_id '{item.parent_reference_id}'"
                raise NotFoundError(f"Parent log {wanted} not found")

        if item.project_id is not None:
            project_id = item.project_id
        elif item.project is not None:
            project_id = await self._store.project_by_name(org_id, item.project)
        else:
            assert stored_config is not None  # _check_pairs: no project means a config_id was given
            project_id = str(stored_config["project_id"])
        config_id = (
            str(stored_config["id"]) if stored_config else await self._config_id(org_id, project_id, item)
        )
        session_id = item.session_id
        if item.session_reference_id is not None:
            session_id = await self._store.session_by_reference(org_id, item.session_reference_id)
        # A child without a session of its own joins its parent's, keeping the tree whole (as /chat does).
        if parent is not None and session_id is None:
            session_id = parent[1]
        return _Resolved(project_id, config_id, session_id, parent[0] if parent else None)

    async def _in_project(self, org_id: str, item: LogRequest, project_id: str) -> bool:
        """Whether the log's project, when it names one, is ``project_id`` (a name is looked up, not
        created: a refused log leaves no project behind)."""
        if item.project_id is not None:
            return item.project_id == project_id
        if item.project is not None:
            named = await ProjectStore(self._store.engine).by_name(org_id, item.project)
            return named is not None and named.id == project_id
        return True

    async def _config_id(self, org_id: str, project_id: str, item: LogRequest) -> str:
        config = item.config
        assert config is not None
        if isinstance(config, ModelConfigRequest):
            # ``type`` is the union's tag, not a parameter: the same parameters as a /chat config share an id.
            body = config.model_dump(mode="json", exclude_none=True, exclude={"type"})
            return await self._store.model_config_id(
                org_id, project_id, model_configs.config_hash(body), body
            )
        body = config.model_dump(mode="json", exclude_none=True)
        return await self._logs.typed_config_id(
            org_id, project_id, model_configs.config_hash(body), body, config_type="tool"
        )

    # -- reading ----------------------------------------------------------------------------------------

    async def get(self, org_id: str, log_id: str) -> dict[str, Any]:
        rows = await self._logs.fetch(org_id, [log_id])
        if not rows:
            raise NotFoundError(f"Log '{log_id}' not found")
        return log_response(rows[0])

    async def page(
        self, org_id: str, where: LogFilter, sorts: list[LogSort], *, page: int, size: int
    ) -> dict[str, Any]:
        if not await self._store.project_exists(org_id, where.project_id):
            raise NotFoundError(f"Project '{where.project_id}' not found")
        rows, total = await self._logs.page(org_id, where, sorts, page=page, size=size)
        return paginated([log_response(row) for row in rows], page=page, size=size, total=total)

    # -- changes ----------------------------------------------------------------------------------------

    async def update(
        self,
        org_id: str,
        change: UpdateLogRequest,
        *,
        log_id: str | None = None,
        reference_id: str | None = None,
    ) -> dict[str, Any]:
        """Changes only the fields the caller sent. A ``save=false`` log keeps no output, even a late one."""
        if log_id is None:
            assert reference_id is not None
            log_id = await self._logs.log_id_by_reference(org_id, reference_id)
            if log_id is None:
                raise NotFoundError(f"Log with reference_id '{reference_id}' not found")
        rows = await self._logs.fetch(org_id, [log_id])
        if not rows:
            raise NotFoundError(f"Log '{log_id}' not found")
        current = rows[0]
        sent = change.model_dump(include=change.model_fields_set & {"output", "error", "duration"})
        if not current["save"]:
            sent.pop("output", None)
        if sent:
            error = sent.get("error", current["error"])
            sent["status"] = "error" if error else "complete"
            sent["updated_at"] = datetime.now(UTC)
            await self._logs.update(org_id, log_id, sent)
        return await self.get(org_id, log_id)

    async def delete(self, org_id: str, log_ids: list[str]) -> None:
        missing = await self._logs.delete(org_id, log_ids)
        if missing:
            raise NotFoundError(f"Log '{missing[0]}' not found (nothing was deleted)")
