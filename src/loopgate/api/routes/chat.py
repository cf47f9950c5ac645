"""``POST /v4/chat``."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.responses import JSONBytes
from loopgate.api.sse import SSEResponse
from loopgate.schemas.chat import ChatRequest
from loopgate.service.generation import GenerationService

router = APIRouter()


@router.post("/chat", response_class=JSONBytes)
async def chat(body: ChatRequest, org_id: Organization, request: Request) -> Response:
    service: GenerationService = request.app.state.generation
    if body.stream:
        return SSEResponse(await service.chat_stream(org_id, body))
    return JSONBytes(await service.chat(org_id, body))
