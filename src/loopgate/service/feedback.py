"""Feedback: checking values against the project's feedback types, recording them, and ``unset``.

The types a project accepts are ``feedback_types.effective``: the five v4 defaults (``rating``: good / bad,
``action``: copied / saved / dismissed, ``issue``: any label, ``correction`` / ``comment``: text) with the
project's own types (``projects.feedback_types``) added or replacing them. A value outside a categorical
type's labels is a 422; so is a type the project does not have -- otherwise a typo would silently start a
new type.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from loopgate import ids
from loopgate.errors import NotFoundError, RequestInvalid
from loopgate.schemas.feedback import Feedback, FeedbackRequest, feedback_response
from loopgate.service import feedback_types
from loopgate.store.feedback import FeedbackChange, FeedbackStore
from loopgate.store.logs import utc

FEEDBACK_PREFIX = "ann"

Loc = list[str | int]


def check_value(feedback_type: str, value: Any, custom: list[dict[str, Any]], loc: Loc) -> None:
    """Raises RequestInvalid (422) unless ``value`` is acceptable for ``feedback_type`` in a project whose
    own types are ``custom``."""
    definitions = feedback_types.effective(custom)
    definition = next((entry for entry in definitions if entry.get("type") == feedback_type), None)
    if definition is None:
        known = ", ".join(str(entry.get("type")) for entry in definitions)
        raise RequestInvalid(
            [*loc, "type"],
            f"Unknown feedback type '{feedback_type}' for this project (known: {known}); "
            "create it with POST /projects/{id}/feedback-types",
        )
    kind = definition.get("class")
    labels = [str(label["value"]) for label in definition.get("values") or [] if isinstance(label, dict)]
    if kind == "text":
        if not isinstance(value, str):
            raise RequestInvalid([*loc, "value"], f"Feedback of type '{feedback_type}' takes text")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestInvalid([*loc, "value"], f"Feedback of type '{feedback_type}' takes a number")
    elif kind in ("select", "multi_select") or labels:
        if kind == "select" and isinstance(value, list):
            raise RequestInvalid([*loc, "value"], f"Feedback of type '{feedback_type}' takes one label")
        for chosen in value if isinstance(value, list) else [value]:
            # A categorical type without labels (the default ``issue``) takes any label.
            if not isinstance(chosen, str) or (labels and chosen not in labels):
                raise RequestInvalid(
                    [*loc, "value"],
                    f"{chosen!r} is not a label of feedback type '{feedback_type}' "
                    f"(labels: {', '.join(labels) or 'any text'})",
                )


def _stamps(count: int) -> list[datetime]:
    """One timestamp per item of a request, a microsecond apart: feedback reads back (and "latest" is
    decided) by time, so items sent together keep the order they were sent in."""
    start = datetime.now(UTC)
    return [start + timedelta(microseconds=index) for index in range(count)]


def _change(
    log_id: str, item: Feedback | FeedbackRequest, stamp: datetime, org_id: str
) -> tuple[FeedbackChange, dict[str, Any]]:
    feedback_id = ids.new_id(FEEDBACK_PREFIX)
    created_at = utc(item.created_at) if item.created_at is not None else stamp
    unset = isinstance(item, FeedbackRequest) and bool(item.unset)
    row = None
    if not unset:
        row = {
            "id": feedback_id,
            "org_id": org_id,
            "log_id": log_id,
            "type": item.type,
            "value": orjson.dumps(item.value).decode(),
            "user": item.user,
            "created_at": created_at,
        }
    response = feedback_response(
        feedback_id=feedback_id,
        type_=item.type,
        # FeedbackResponse.value is required and not nullable (the SDK rejects null there): an unset answers
        # with the empty label list, "no value".
        value=[] if unset else item.value,
        data_id=log_id,
        user=item.user,
        created_at=created_at,
    )
    return FeedbackChange(log_id=log_id, type=item.type, row=row), response


class FeedbackService:
    def __init__(self, store: FeedbackStore) -> None:
        self._store = store

    async def submit(
        self, org_id: str, items: Sequence[FeedbackRequest], *, batch: bool
    ) -> list[dict[str, Any]]:
        """Checks every item first, then records them all in one transaction: a batch lands whole or not."""
        locs: list[Loc] = [["body", index] if batch else ["body"] for index in range(len(items))]
        for item, loc in zip(items, locs, strict=True):
            if not item.data_id:
                raise RequestInvalid([*loc, "data_id"], "data_id (the log the feedback is about) is required")
            if not item.unset and item.value is None:
                raise RequestInvalid([*loc, "value"], "value is required unless unset is true")
        projects = await self._store.log_projects(org_id, [str(item.data_id) for item in items])
        for item in items:
            if item.data_id not in projects:
                raise NotFoundError(f"Log '{item.data_id}' not found")
        types = await self._store.feedback_types(
            org_id, [project for project in projects.values() if project is not None]
        )
        for item, loc in zip(items, locs, strict=True):
            if not item.unset:
                project_id = projects[str(item.data_id)]
                check_value(item.type, item.value, types.get(project_id or "", []), loc)
        stamps = _stamps(len(items))
        changes, responses = [], []
        for item, stamp in zip(items, stamps, strict=True):
            change, response = _change(str(item.data_id), item, stamp, org_id)
            changes.append(change)
            responses.append(response)
        await self._store.apply(changes)
        return responses

    async def check_inline(self, org_id: str, project_id: str, items: Sequence[tuple[Feedback, Loc]]) -> None:
        """Checks the feedback carried by new logs of one project (each item with its location)."""
        definitions = (await self._store.feedback_types(org_id, [project_id])).get(project_id, [])
        for item, loc in items:
            check_value(item.type, item.value, definitions, loc)

    async def record_inline(self, org_id: str, entries: Sequence[tuple[str, Feedback]]) -> None:
        """Records feedback that came with new logs (already checked, logs already committed)."""
        stamps = _stamps(len(entries))
        await self._store.apply(
            [
                _change(log_id, item, stamp, org_id)[0]
                for (log_id, item), stamp in zip(entries, stamps, strict=True)
            ]
        )
