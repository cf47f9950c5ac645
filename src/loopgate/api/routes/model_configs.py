"""v4 routes: model configs -- register into a project, read, and ``.prompt`` files (export, serialize,
deserialize; format in ``service/prompt_files.py``)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.schemas.common import ModelConfigChatRequest
from loopgate.schemas.model_configs import (
    DeserializeRequest,
    ModelConfigCompletionRequest,
    ProjectModelConfigRequest,
)
from loopgate.service import model_config_registry
from loopgate.service.model_config_registry import ModelConfigService

router = APIRouter(route_class=V4Route, tags=["model-configs"])


def _service(request: Request) -> ModelConfigService:
    service: ModelConfigService = request.app.state.model_configs
    return service


ModelConfigs = Annotated[ModelConfigService, Depends(_service)]


@router.post("/model-configs", response_class=JSONBytes)
async def register(body: ProjectModelConfigRequest, org_id: Organization, service: ModelConfigs) -> Response:
    return JSONBytes(await service.register(org_id, body))


@router.post("/model-configs/serialize", response_class=JSONBytes)
async def serialize(body: ModelConfigChatRequest | ModelConfigCompletionRequest) -> Response:
    return JSONBytes(model_config_registry.serialize(body))


@router.post("/model-configs/deserialize", response_class=JSONBytes)
async def deserialize(body: DeserializeRequest) -> Response:
    return JSONBytes(model_config_registry.deserialize(body.config))


@router.get("/model-configs/{id}", response_class=JSONBytes)
async def get_model_config(id: str, org_id: Organization, service: ModelConfigs) -> Response:
    return JSONBytes(await service.get(org_id, id))


@router.post("/model-configs/{id}/export", response_class=JSONBytes)
async def export(id: str, org_id: Organization, service: ModelConfigs) -> Response:
    """The ``.prompt`` file as a JSON string (the SDK asks for ``application/json`` first)."""
    return JSONBytes(await service.export(org_id, id))
