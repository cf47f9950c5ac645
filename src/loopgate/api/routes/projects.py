"""v4 routes: projects, their config versions, feedback types and deployments.

Lists: ``GET /projects`` is paginated (page from 0, size 10 by default); ``/configs`` and
``/deployed-configs`` are plain arrays, as in the spec.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.paging import PageFromZero
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.schemas.projects import (
    CreateProjectRequest,
    EnvironmentProjectConfigRequest,
    FeedbackTypeRequest,
    ProjectSortBy,
    SortOrder,
    UpdateProjectRequest,
)
from loopgate.service.projects import ProjectService

router = APIRouter(route_class=V4Route, tags=["projects"])


def _service(request: Request) -> ProjectService:
    service: ProjectService = request.app.state.projects
    return service


Projects = Annotated[ProjectService, Depends(_service)]
EnvironmentName = Annotated[
    str | None, Query(description="Environment name; the default environment when omitted")
]


@router.get("/projects", response_class=JSONBytes)
async def list_projects(
    org_id: Organization,
    service: Projects,
    page: PageFromZero = 0,
    size: Annotated[int, Query(ge=1, le=1000)] = 10,
    name_filter: Annotated[str | None, Query(alias="filter")] = None,
    user_filter: str | None = None,
    sort_by: ProjectSortBy = ProjectSortBy.CREATED_AT,
    order: SortOrder = SortOrder.DESC,
) -> Response:
    page_body = await service.page(
        org_id,
        page=page,
        size=size,
        name_filter=name_filter,
        user_filter=user_filter,
        sort_by=sort_by,
        order=order,
    )
    return JSONBytes(page_body)


@router.post("/projects", status_code=201, response_class=JSONBytes)
async def create_project(body: CreateProjectRequest, org_id: Organization, service: Projects) -> Response:
    return JSONBytes(await service.create(org_id, body), status_code=201)


@router.get("/projects/{id}", response_class=JSONBytes)
async def get_project(id: str, org_id: Organization, service: Projects) -> Response:
    return JSONBytes(await service.get(org_id, id))


@router.patch("/projects/{id}", response_class=JSONBytes)
async def update_project(
    id: str, body: UpdateProjectRequest, org_id: Organization, service: Projects
) -> Response:
    return JSONBytes(await service.update(org_id, id, body))


@router.delete("/projects/{id}", status_code=204)
async def delete_project(id: str, org_id: Organization, service: Projects) -> Response:
    await service.delete(org_id, id)
    return Response(status_code=204)


@router.get("/projects/{id}/configs", response_class=JSONBytes)
async def list_configs(
    id: str, org_id: Organization, service: Projects, evaluation_aggregates: bool = False
) -> Response:
    return JSONBytes(await service.configs(org_id, id, aggregates=evaluation_aggregates))


@router.get("/projects/{id}/active-config", response_class=JSONBytes)
async def get_active_config(
    id: str, org_id: Organization, service: Projects, environment: EnvironmentName = None
) -> Response:
    return JSONBytes(await service.deployments.active_config(org_id, id, environment))


@router.delete("/projects/{id}/active-config", response_class=JSONBytes)
async def deactivate_config(
    id: str, org_id: Organization, service: Projects, environment: EnvironmentName = None
) -> Response:
    await service.deployments.deactivate(org_id, id, environment)
    return JSONBytes(await service.get(org_id, id))


@router.post("/projects/{id}/feedback-types", status_code=201, response_class=JSONBytes)
async def create_feedback_type(
    id: str, body: FeedbackTypeRequest, org_id: Organization, service: Projects
) -> Response:
    return JSONBytes(await service.add_feedback_type(org_id, id, body), status_code=201)


@router.get("/projects/{id}/deployed-configs", response_class=JSONBytes)
async def list_deployed_configs(id: str, org_id: Organization, service: Projects) -> Response:
    return JSONBytes(await service.deployments.deployed_configs(org_id, id))


@router.patch("/projects/{project_id}/deploy-config", response_class=JSONBytes)
async def deploy_config(
    project_id: str, body: EnvironmentProjectConfigRequest, org_id: Organization, service: Projects
) -> Response:
    return JSONBytes(await service.deployments.deploy(org_id, project_id, body))


@router.delete("/projects/{project_id}/deployed-config/{environment_id}", response_class=JSONBytes)
async def delete_deployed_config(
    project_id: str, environment_id: str, org_id: Organization, service: Projects
) -> Response:
    return JSONBytes(await service.deployments.undeploy(org_id, project_id, environment_id))
