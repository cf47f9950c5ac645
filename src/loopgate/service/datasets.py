"""Datasets and datapoints: DatasetResponse and DatapointResponse, datapoints from requests or copied from
logs, and the two endpoints v4 decommissioned but SDK 0.5.18 still calls.

Datapoints copied from logs (``{"log_ids": [...]}``) take the log's ``inputs`` and ``messages`` (the
messages sent to the model, templates rendered), and as ``target`` what the model answered:
``{"output": <the log's output>}``, plus ``"tool_calls"`` when the answer called tools. That is the ground
truth a regression evaluation compares new outputs against. The copy is taken once: later changes to the
log (or its deletion) leave the datapoint as it was. Every id must be one of the organization's logs, or
nothing is created (404 naming the first unknown id).
"""

from typing import Any

import orjson

from loopgate.errors import ConflictError, NotFoundError
from loopgate.schemas.datasets import (
    CreateDatapointRequest,
    CreateDatapointsByLogsRequest,
    CreateDatasetRequest,
    UpdateDatapointRequest,
    UpdateDatasetRequest,
)
from loopgate.service.log_views import timestamp
from loopgate.service.records import full_message
from loopgate.store.catalog import Catalog
from loopgate.store.datasets import DatapointRow, DatasetRow, NewDatapoint
from loopgate.store.evaluators import InUse
from loopgate.store.logs import LogStore


def dataset_response(row: DatasetRow) -> dict[str, Any]:
    return {
        "id": row.id,
        # v4: "an empty string for datasets not tied to a project" (here: their project was deleted).
        "project_id": row.project_id or "",
        "name": row.name,
        "description": row.description,
        "datapoint_count": row.datapoint_count,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }


def datapoint_response(row: DatapointRow) -> dict[str, Any]:
    """Every field present; fields never given read as empty rather than null."""
    return {
        "id": row.id,
        "dataset_id": row.dataset_id,
        "inputs": row.inputs or {},
        "messages": [full_message(message) for message in row.messages or ()],
        "target": row.target or {},
    }


def _new(request: CreateDatapointRequest) -> NewDatapoint:
    messages = request.messages
    return NewDatapoint(
        inputs=request.inputs,
        messages=[m.model_dump(mode="json", exclude_none=True) for m in messages]
        if messages is not None
        else None,
        target=request.target,
    )


def _as_text(value: Any) -> str:
    # DatapointResponse.inputs holds strings; a log's inputs may hold any JSON (POST /logs takes them so).
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _from_log(row: dict[str, Any]) -> NewDatapoint:
    payload: dict[str, Any] = row["payload"] or {}
    target: dict[str, Any] = {}
    if row["output"] is not None:
        target["output"] = row["output"]
    tool_calls = (payload.get("output_message") or {}).get("tool_calls")
    if tool_calls:
        target["tool_calls"] = tool_calls
    messages = payload.get("messages")
    return NewDatapoint(
        inputs={key: _as_text(value) for key, value in (payload.get("inputs") or {}).items()},
        messages=[full_message(message) for message in messages] if messages is not None else None,
        target=target,
    )


class DatasetService:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._datasets = catalog.datasets
        self._logs = LogStore(catalog.store.engine)

    async def _dataset(self, org_id: str, dataset_id: str) -> DatasetRow:
        found = await self._datasets.get(org_id, dataset_id)
        if found is None:
            raise NotFoundError(f"Dataset '{dataset_id}' not found")
        return found

    async def _project_id(self, org_id: str, project_id: str) -> str:
        project = await self._catalog.projects.get(org_id, project_id)
        if project is None:
            raise NotFoundError(f"Project '{project_id}' not found")
        return project.id

    async def create(self, org_id: str, project_id: str, request: CreateDatasetRequest) -> dict[str, Any]:
        project = await self._project_id(org_id, project_id)
        created = await self._datasets.create(org_id, project, request.name, request.description)
        if created is None:
            raise NotFoundError(f"Project '{project_id}' not found")
        return dataset_response(created)

    async def list_for_project(self, org_id: str, project_id: str) -> list[dict[str, Any]]:
        project = await self._project_id(org_id, project_id)
        return [dataset_response(row) for row in await self._datasets.of_org(org_id, project)]

    async def all(self, org_id: str) -> list[dict[str, Any]]:
        return [dataset_response(row) for row in await self._datasets.of_org(org_id)]

    async def get(self, org_id: str, dataset_id: str) -> dict[str, Any]:
        return dataset_response(await self._dataset(org_id, dataset_id))

    async def update(self, org_id: str, dataset_id: str, request: UpdateDatasetRequest) -> dict[str, Any]:
        values = request.model_dump(exclude_unset=True, exclude_none=True)
        if not await self._datasets.update(org_id, dataset_id, **values):
            raise NotFoundError(f"Dataset '{dataset_id}' not found")
        return await self.get(org_id, dataset_id)

    async def delete(self, org_id: str, dataset_id: str) -> dict[str, Any]:
        """Answers the dataset as it was (v4 leaves the 200's body open)."""
        dataset = await self._dataset(org_id, dataset_id)
        try:
            deleted = await self._datasets.delete(org_id, dataset_id)
        except InUse:
            raise ConflictError(
                f"Dataset '{dataset_id}' is used by an evaluation (its snapshot is these datapoints); "
                "delete the evaluation's project first"
            ) from None
        if not deleted:
            raise NotFoundError(f"Dataset '{dataset_id}' not found")
        return dataset_response(dataset)

    # -- datapoints -------------------------------------------------------------------------------------

    async def page(self, org_id: str, dataset_id: str, *, page: int, size: int) -> dict[str, Any]:
        found = await self._datasets.page(org_id, dataset_id, page=page, size=size)
        if found is None:
            raise NotFoundError(f"Dataset '{dataset_id}' not found")
        rows, total = found
        return {
            "records": [datapoint_response(row) for row in rows],
            "page": page,
            "size": size,
            "total": total,
        }

    async def add(
        self,
        org_id: str,
        dataset_id: str,
        body: CreateDatapointsByLogsRequest | CreateDatapointRequest | list[CreateDatapointRequest],
    ) -> list[dict[str, Any]]:
        await self._dataset(org_id, dataset_id)  # an unknown dataset is named before any unknown log
        if isinstance(body, CreateDatapointsByLogsRequest):
            items = await self._copied(org_id, body.log_ids)
        elif isinstance(body, CreateDatapointRequest):
            items = [_new(body)]
        else:
            items = [_new(request) for request in body]
        added = await self._datasets.add(org_id, dataset_id, items)
        if added is None:
            raise NotFoundError(f"Dataset '{dataset_id}' not found")
        return [datapoint_response(row) for row in added]

    async def _copied(self, org_id: str, log_ids: list[str]) -> list[NewDatapoint]:
        wanted = list(dict.fromkeys(log_ids))  # a log listed twice is one datapoint
        found = {row["id"]: row for row in await self._logs.fetch(org_id, wanted)}
        for log_id in wanted:
            if log_id not in found:
                raise NotFoundError(f"Log '{log_id}' not found (no datapoint was created)")
        return [_from_log(found[log_id]) for log_id in wanted]

    async def datapoint(self, org_id: str, datapoint_id: str) -> dict[str, Any]:
        found = await self._datasets.datapoint(org_id, datapoint_id)
        if found is None:
            raise NotFoundError(f"Datapoint '{datapoint_id}' not found")
        return datapoint_response(found)

    async def update_datapoint(
        self, org_id: str, datapoint_id: str, request: UpdateDatapointRequest
    ) -> dict[str, Any]:
        fields = {name for name in request.model_fields_set if name in ("inputs", "messages", "target")}
        if not await self._datasets.update_datapoint(org_id, datapoint_id, _new(request), fields):
            raise NotFoundError(f"Datapoint '{datapoint_id}' not found")
        return await self.datapoint(org_id, datapoint_id)

    async def delete_datapoints(self, org_id: str, datapoint_ids: list[str]) -> None:
        missing = await self._datasets.delete_datapoints(org_id, datapoint_ids)
        if missing:
            raise NotFoundError(f"Datapoint '{missing[0]}' not found (nothing was deleted)")
