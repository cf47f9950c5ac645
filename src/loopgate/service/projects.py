"""Projects: create, read, page through, update, delete; their config versions and feedback types.

Deleting a project deletes its logs (and their feedback), its config versions and its deployments, in one
transaction: v4 says "delete a file", and logs without their project could not be listed or exported by
any v4 endpoint. Sessions span projects and are kept; datasets are kept too, detached from the project
(see ``store/projects.py``).
"""

from typing import Any

from loopgate.errors import RequestInvalid
from loopgate.schemas.projects import (
    CreateProjectRequest,
    FeedbackTypeRequest,
    ProjectSortBy,
    SortOrder,
    UpdateProjectRequest,
)
from loopgate.service import feedback_types
from loopgate.service.deployments import DeploymentService, require_config, require_project
from loopgate.service.project_views import evaluator_aggregates, project_config_view, project_view
from loopgate.store.catalog import Catalog
from loopgate.store.projects import ProjectRow


def _name(value: str, loc: list[str | int]) -> str:
    # Kept as given (not stripped): generation requests find projects by the exact name.
    if not value.strip():
        raise RequestInvalid(loc, "Project name must not be empty")
    return value


class ProjectService:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.deployments = DeploymentService(catalog)

    async def _views(self, org_id: str, projects: list[ProjectRow]) -> list[dict[str, Any]]:
        counts = await self._catalog.projects.log_counts([p.id for p in projects])
        active = await self.deployments.active_configs(org_id, projects)
        return [
            project_view(
                project,
                data_count=counts.get(project.id, 0),
                feedback_types=[
                    feedback_types.model(t) for t in feedback_types.effective(project.feedback_types)
                ],
                active_config=active.get(project.id),
            )
            for project in projects
        ]

    async def views(self, org_id: str, project_ids: list[str]) -> dict[str, dict[str, Any]]:
        """ProjectResponse of each of these projects that exists, by id."""
        found = [await self._catalog.projects.get(org_id, project_id) for project_id in set(project_ids)]
        projects = [project for project in found if project is not None]
        return {view["id"]: view for view in await self._views(org_id, projects)}

    async def get(self, org_id: str, project_id: str) -> dict[str, Any]:
        project = await require_project(self._catalog, org_id, project_id)
        (view,) = await self._views(org_id, [project])
        return view

    async def create(self, org_id: str, request: CreateProjectRequest) -> dict[str, Any]:
        name = _name(request.name, ["body", "name"])
        custom: list[dict[str, Any]] = []
        for position, entry in enumerate(request.feedback_types or ()):  # all checked before the insert
            custom = feedback_types.register(custom, entry, ("body", "feedback_types", position))
        project = await self._catalog.projects.create(org_id, name, request.directory_id, custom or None)
        (view,) = await self._views(org_id, [project])
        return view

    async def page(
        self,
        org_id: str,
        *,
        page: int,
        size: int,
        name_filter: str | None,
        user_filter: str | None,
        sort_by: ProjectSortBy,
        order: SortOrder,
    ) -> dict[str, Any]:
        if user_filter:
            # Projects here have no users, so a user filter matches none of them.
            return {"records": [], "page": page, "size": size, "total": 0}
        rows, total = await self._catalog.projects.page(
            org_id,
            name_filter=name_filter,
            sort_by=sort_by.value,
            descending=order is SortOrder.DESC,
            page=page,
            size=size,
        )
        return {"records": await self._views(org_id, rows), "page": page, "size": size, "total": total}

    async def update(self, org_id: str, project_id: str, request: UpdateProjectRequest) -> dict[str, Any]:
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        values: dict[str, Any] = {}
        if request.name is not None:
            values["name"] = _name(request.name, ["body", "name"])
        if request.directory_id is not None:
            values["directory_id"] = request.directory_id
        config = None
        if request.active_config_id is not None:
            loc: list[str | int] = ["body", "active_config_id"]
            config = await require_config(catalog, org_id, project, request.active_config_id, loc)
        # Checked before anything changes, so a refused update (a taken name: 409) changes nothing.
        if values or config is not None:
            await catalog.projects.update(org_id, project.id, **values)
        if config is not None:
            await self.deployments.activate(org_id, project, config)
        if "name" in values:
            catalog.store.forget_project(org_id, project.id, project.name)
        return await self.get(org_id, project.id)

    async def delete(self, org_id: str, project_id: str) -> None:
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        configs = await catalog.configs.for_project(project.id)
        await catalog.projects.delete(org_id, project.id)
        catalog.store.forget_project(org_id, project.id, project.name)
        catalog.configs.forget([row.id for row in configs])

    async def configs(
        self, org_id: str, project_id: str, *, aggregates: bool = False
    ) -> list[dict[str, Any]]:
        """ProjectConfigResponse for every config version of the project, oldest first. With
        ``aggregates``, each carries its ``evaluation_aggregates``: one per evaluator of the evaluations of
        that version, its results pooled over those runs (``aggregates_by_config``); [] for a version
        never evaluated. The whole list takes a fixed number of queries, however many versions it has."""
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        rows = await catalog.configs.for_project(project.id)
        usage = await catalog.configs.usage([row.id for row in rows])
        if not aggregates:
            return [project_config_view(row, project, usage.get(row.id)) for row in rows]
        means = await catalog.evaluations.aggregates_by_config(org_id, project.id)
        evaluators = await catalog.evaluators.many(
            org_id, list({key for of_config in means.values() for key in of_config})
        )
        views = []
        for row in rows:
            of_config = means.get(row.id, {})
            # An evaluator in use cannot be deleted (409): one is missing only if the project, and then
            # the evaluator, were deleted between the reads above.
            used = [evaluators[key] for key in of_config if key in evaluators]
            summary = evaluator_aggregates(row.id, used, of_config)
            views.append(project_config_view(row, project, usage.get(row.id), aggregates=summary))
        return views

    async def add_feedback_type(
        self, org_id: str, project_id: str, request: FeedbackTypeRequest
    ) -> dict[str, Any]:
        project = await require_project(self._catalog, org_id, project_id)
        custom = feedback_types.register(project.feedback_types, request)
        await self._catalog.projects.update(org_id, project.id, feedback_types=custom)
        return feedback_types.model(custom[-1])
