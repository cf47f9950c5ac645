"""v4 routes: datasets (``/projects/{project_id}/datasets``, ``/datasets``, ``/datasets/{id}``) and their
datapoints (``/datasets/{dataset_id}/datapoints``, ``/datapoints``).

Dataset lists are plain arrays and ``GET /datasets/{dataset_id}/datapoints`` is paginated from page 0, size
50 by default, as in the spec. ``PATCH /datapoints/{id}`` and ``DELETE /datapoints`` are decommissioned in
v4 but implemented with the bodies SDK 0.5.18 sends (see ``service/datasets.py``).
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.paging import PageFromZero, PageSize
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.schemas.datasets import (
    CreateDatapointsBody,
    CreateDatasetRequest,
    UpdateDatapointRequest,
    UpdateDatasetRequest,
)
from loopgate.service.datasets import DatasetService

router = APIRouter(route_class=V4Route, tags=["datasets"])


def _service(request: Request) -> DatasetService:
    service: DatasetService = request.app.state.datasets
    return service


Datasets = Annotated[DatasetService, Depends(_service)]


@router.get("/projects/{project_id}/datasets", response_class=JSONBytes)
async def list_project_datasets(project_id: str, org_id: Organization, service: Datasets) -> Response:
    return JSONBytes(await service.list_for_project(org_id, project_id))


@router.post("/projects/{project_id}/datasets", status_code=201, response_class=JSONBytes)
async def create_dataset(
    project_id: str, body: CreateDatasetRequest, org_id: Organization, service: Datasets
) -> Response:
    return JSONBytes(await service.create(org_id, project_id, body), status_code=201)


@router.get("/datasets", response_class=JSONBytes)
async def list_datasets(org_id: Organization, service: Datasets) -> Response:
    return JSONBytes(await service.all(org_id))


@router.get("/datasets/{id}", response_class=JSONBytes)
async def get_dataset(id: str, org_id: Organization, service: Datasets) -> Response:
    return JSONBytes(await service.get(org_id, id))


@router.patch("/datasets/{id}", response_class=JSONBytes)
async def update_dataset(
    id: str, body: UpdateDatasetRequest, org_id: Organization, service: Datasets
) -> Response:
    return JSONBytes(await service.update(org_id, id, body))


@router.delete("/datasets/{id}", response_class=JSONBytes)
async def delete_dataset(id: str, org_id: Organization, service: Datasets) -> Response:
    """Deletes the dataset and its datapoints; answers the dataset as it was."""
    return JSONBytes(await service.delete(org_id, id))


@router.get("/datasets/{dataset_id}/datapoints", response_class=JSONBytes)
async def list_datapoints(
    dataset_id: str,
    org_id: Organization,
    service: Datasets,
    page: PageFromZero = 0,
    size: PageSize = 50,
) -> Response:
    return JSONBytes(await service.page(org_id, dataset_id, page=page, size=size))


@router.post("/datasets/{dataset_id}/datapoints", status_code=201, response_class=JSONBytes)
async def create_datapoints(
    dataset_id: str, body: Annotated[CreateDatapointsBody, Body()], org_id: Organization, service: Datasets
) -> Response:
    """``{"log_ids": [...]}``, one CreateDatapointRequest or a list of them: always answers a list."""
    return JSONBytes(await service.add(org_id, dataset_id, body), status_code=201)


@router.get("/datapoints/{id}", response_class=JSONBytes)
async def get_datapoint(id: str, org_id: Organization, service: Datasets) -> Response:
    return JSONBytes(await service.datapoint(org_id, id))


@router.patch("/datapoints/{id}", response_class=JSONBytes, deprecated=True)
async def update_datapoint(
    id: str, body: UpdateDatapointRequest, org_id: Organization, service: Datasets
) -> Response:
    return JSONBytes(await service.update_datapoint(org_id, id, body))


@router.delete("/datapoints", status_code=204, deprecated=True)
async def delete_datapoints(
    body: Annotated[list[str], Body()], org_id: Organization, service: Datasets
) -> Response:
    """Deletes every listed datapoint, or none when an id is unknown (404)."""
    await service.delete_datapoints(org_id, body)
    return Response(status_code=204)
