"""Deployments: which config version a project runs in each environment.

The "active config" of a project is the one deployed to the organization's default environment
(``production``). Deploy endpoints take environment ids (discoverable only through
``GET /projects/{id}/deployed-configs``); the active-config endpoints and ``*-deployed`` generation take an
environment name.
"""

from typing import Any

from loopgate.errors import NotFoundError, RequestInvalid
from loopgate.schemas.projects import EnvironmentProjectConfigRequest
from loopgate.service.project_views import deployment_view, project_config_view
from loopgate.store.catalog import Catalog
from loopgate.store.deployments import Environment
from loopgate.store.model_configs import ConfigRow
from loopgate.store.projects import ProjectRow


async def require_project(catalog: Catalog, org_id: str, project_id: str) -> ProjectRow:
    project = await catalog.projects.get(org_id, project_id)
    if project is None:
        raise NotFoundError(f"Project '{project_id}' not found")
    return project


async def require_config(
    catalog: Catalog, org_id: str, project: ProjectRow, config_id: str, loc: list[str | int]
) -> ConfigRow:
    """A config version of this project (another organization's reads as absent)."""
    row = await catalog.configs.get(org_id, config_id)
    if row is None:
        raise NotFoundError(f"Model config '{config_id}' not found")
    if row.project_id != project.id:
        raise RequestInvalid(loc, f"Model config '{config_id}' belongs to another project")
    return row


class DeploymentService:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def _environment(self, org_id: str, name: str | None) -> Environment:
        environment = await self._catalog.deployments.by_name(org_id, name)
        if environment is None:
            raise NotFoundError(f"Environment '{name}' not found")
        return environment

    async def active_configs(self, org_id: str, projects: list[ProjectRow]) -> dict[str, dict[str, Any]]:
        """project id -> ProjectConfigResponse of its active config, for projects that have one."""
        catalog = self._catalog
        default = await catalog.deployments.default(org_id)
        deployed = await catalog.deployments.deployed_many([p.id for p in projects], default.id)
        rows = await catalog.configs.many(sorted(set(deployed.values())))
        usage = await catalog.configs.usage(list(rows))
        views = {}
        for project in projects:
            row = rows.get(deployed.get(project.id, ""))
            if row is not None:
                views[project.id] = project_config_view(row, project, usage.get(row.id))
        return views

    async def deployed_configs(self, org_id: str, project_id: str) -> list[dict[str, Any]]:
        """EnvironmentProjectConfigResponse for every environment of the organization."""
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        environments = await catalog.deployments.environments(org_id)
        deployed = await catalog.deployments.deployed(project.id)
        rows = await catalog.configs.many(sorted(set(deployed.values())))
        return [deployment_view(project, env, rows.get(deployed.get(env.id, ""))) for env in environments]

    async def deploy(
        self, org_id: str, project_id: str, request: EnvironmentProjectConfigRequest
    ) -> list[dict[str, Any]]:
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        row = await require_config(catalog, org_id, project, request.config_id, ["body", "config_id"])
        targets: list[str] = []
        for position, wanted in enumerate(request.environments or ()):
            environment = await catalog.deployments.by_id(org_id, wanted.id)
            if environment is None:
                raise NotFoundError(f"Environment '{wanted.id}' not found")
            if wanted.name is not None and wanted.name != environment.name:
                raise RequestInvalid(
                    ["body", "environments", position, "name"],
                    f"Environment '{wanted.id}' is named '{environment.name}', not '{wanted.name}'",
                )
            targets.append(environment.id)
        if request.environments is None:
            targets = [(await catalog.deployments.default(org_id)).id]
        await catalog.deployments.deploy(project.id, row.id, targets)
        return await self.deployed_configs(org_id, project.id)

    async def undeploy(self, org_id: str, project_id: str, environment_id: str) -> list[dict[str, Any]]:
        """Removes the deployment (a no-op when there is none); answers with the deployments left."""
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        environment = await catalog.deployments.by_id(org_id, environment_id)
        if environment is None:
            raise NotFoundError(f"Environment '{environment_id}' not found")
        await catalog.deployments.undeploy(project.id, environment.id)
        return await self.deployed_configs(org_id, project.id)

    async def active_config(self, org_id: str, project_id: str, environment: str | None) -> dict[str, Any]:
        """GetModelConfigResponse of the config deployed to the environment (default when None)."""
        catalog = self._catalog
        project = await require_project(catalog, org_id, project_id)
        env = await self._environment(org_id, environment)
        config_id = await catalog.deployments.deployed_config(project.id, env.id)
        row = await catalog.configs.get(org_id, config_id) if config_id else None
        if row is None:
            raise NotFoundError(
                f"No model config is deployed to environment '{env.name}' of project '{project.name}'"
            )
        usage = await catalog.configs.usage([row.id])
        return project_config_view(row, project, usage.get(row.id), environment_id=env.id)

    async def deactivate(self, org_id: str, project_id: str, environment: str | None) -> None:
        project = await require_project(self._catalog, org_id, project_id)
        env = await self._environment(org_id, environment)
        await self._catalog.deployments.undeploy(project.id, env.id)

    async def activate(self, org_id: str, project: ProjectRow, config: ConfigRow) -> None:
        """Deploys to the default environment (``PATCH /projects/{id}`` with ``active_config_id``)."""
        default = await self._catalog.deployments.default(org_id)
        await self._catalog.deployments.deploy(project.id, config.id, [default.id])
