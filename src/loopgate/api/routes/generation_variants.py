"""v4 routes: the generation endpoints besides ``POST /chat`` -- ``/chat-deployed``,
``/chat-model-config``, ``/completion``, ``/completion-deployed``, ``/completion-model-config``.

They run the same flow as ``/chat`` (``service/generation.py``); only where the config comes from and the
response shape differ. ``stream: true`` answers with the same SSE events.
"""

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.api.sse import SSEResponse
from loopgate.schemas.completion import (
    ChatDeployedRequest,
    ChatModelConfigRequest,
    CompletionDeployedRequest,
    CompletionModelConfigRequest,
    CompletionRequest,
)
from loopgate.service.generation import GenerationService
from loopgate.service.prepare import GenerationBody

router = APIRouter(route_class=V4Route, tags=["generation"])


async def _respond(request: Request, org_id: str, body: GenerationBody) -> Response:
    service: GenerationService = request.app.state.generation
    if body.stream:
        return SSEResponse(await service.generate_stream(org_id, body))
    return JSONBytes(await service.generate(org_id, body))


@router.post("/chat-deployed", response_class=JSONBytes)
async def chat_deployed(body: ChatDeployedRequest, org_id: Organization, request: Request) -> Response:
    return await _respond(request, org_id, body)


@router.post("/chat-model-config", response_class=JSONBytes)
async def chat_model_config(body: ChatModelConfigRequest, org_id: Organization, request: Request) -> Response:
    return await _respond(request, org_id, body)


@router.post("/completion", response_class=JSONBytes)
async def completion(body: CompletionRequest, org_id: Organization, request: Request) -> Response:
    return await _respond(request, org_id, body)


@router.post("/completion-deployed", response_class=JSONBytes)
async def completion_deployed(
    body: CompletionDeployedRequest, org_id: Organization, request: Request
) -> Response:
    return await _respond(request, org_id, body)


@router.post("/completion-model-config", response_class=JSONBytes)
async def completion_model_config(
    body: CompletionModelConfigRequest, org_id: Organization, request: Request
) -> Response:
    return await _respond(request, org_id, body)
