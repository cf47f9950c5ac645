"""``/model-configs``: register a config version into a project, read one, and the ``.prompt`` file
conversions.

Registering follows the generation endpoints' versioning: the same parameters in a project give the same
version (``service/model_configs.py``). A project's first registered config becomes its active config --
loopgate reads "first" as "the project has no active config yet", so registering into a project whose
configs so far only came from ``/chat`` calls also gives it one.
"""

from typing import Any

from pydantic import ValidationError

from loopgate.errors import NotFoundError, RequestInvalid
from loopgate.schemas.common import ModelConfigChatRequest
from loopgate.schemas.model_configs import ModelConfigCompletionRequest, ProjectModelConfigRequest
from loopgate.service import model_configs, prompt_files
from loopgate.service.project_views import model_config_view, project_config_view
from loopgate.store.catalog import Catalog
from loopgate.store.model_configs import ConfigRow


def register_body(request: ProjectModelConfigRequest) -> dict[str, Any]:
    """The stored body of a registered config. Without an explicit ``endpoint``, a config that has only a
    chat template is a chat config (the spec's default ``complete`` would make it a different version
    from the same config sent inline to ``/chat``)."""
    body = request.model_dump(mode="json", exclude_none=True)
    chat_only = request.chat_template is not None and request.prompt_template is None
    if "endpoint" not in request.model_fields_set and chat_only:
        body["endpoint"] = "chat"
    return body


class ModelConfigService:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def _row(self, org_id: str, config_id: str) -> ConfigRow:
        row = await self._catalog.configs.get(org_id, config_id)
        if row is None:
            raise NotFoundError(f"Model config '{config_id}' not found")
        return row

    async def register(self, org_id: str, request: ProjectModelConfigRequest) -> dict[str, Any]:
        catalog = self._catalog
        store = catalog.store
        if request.project is not None and request.project_id is not None:
            raise RequestInvalid(["body", "project_id"], "Give either project or project_id, not both")
        if request.project_id is not None:
            if not await store.project_exists(org_id, request.project_id):
                raise NotFoundError(f"Project '{request.project_id}' not found")
            project_id = request.project_id
        elif request.project is not None and request.project.strip():
            project_id = await store.project_by_name(org_id, request.project)
        else:
            raise RequestInvalid(
                ["body", "project"], "Give a project name (project) or an existing project_id"
            )
        body = register_body(request)
        config_id = await store.model_config_id(org_id, project_id, model_configs.config_hash(body), body)
        default = await catalog.deployments.default(org_id)
        await catalog.deployments.deploy_if_vacant(project_id, config_id, default.id)
        project = await catalog.projects.get(org_id, project_id)
        row = await self._row(org_id, config_id)
        if project is None:  # deleted in the meantime
            raise NotFoundError(f"Project '{project_id}' not found")
        usage = await catalog.configs.usage([row.id])
        return project_config_view(row, project, usage.get(row.id))

    async def get(self, org_id: str, config_id: str) -> dict[str, Any]:
        """ModelConfigResponse (the bare config, as the spec's ``GET /model-configs/{id}`` returns it)."""
        row = await self._row(org_id, config_id)
        if row.config_type != "model":
            raise NotFoundError(f"Config '{config_id}' is a {row.config_type} config, not a model config")
        return model_config_view(row.id, row.name, row.body)

    async def export(self, org_id: str, config_id: str) -> str:
        row = await self._row(org_id, config_id)
        if row.config_type != "model":
            raise RequestInvalid(["path", "id"], f"Config '{config_id}' is a {row.config_type} config")
        return prompt_files.serialize(row.body)


def serialize(config: ModelConfigChatRequest | ModelConfigCompletionRequest) -> str:
    return prompt_files.serialize(config.model_dump(mode="json", exclude_none=True))


def deserialize(text: str) -> dict[str, Any]:
    """ModelConfigResponse of a ``.prompt`` file. Nothing is stored: the id is derived from the
    parameters (register the config with ``POST /model-configs`` to get a stored version)."""
    found = prompt_files.deserialize(text)
    try:
        config = ProjectModelConfigRequest.model_validate(found)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise RequestInvalid(["body", "config", *error["loc"]], error["msg"], error["type"]) from exc
    body = register_body(config)
    return model_config_view("config_" + model_configs.config_hash(body)[:21], body.get("name"), body)
