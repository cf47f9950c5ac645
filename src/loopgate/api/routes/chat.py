"""``POST /v4/chat``.

Traffic reaches it through ``api/fastlane.py``, which serves this one hot route straight from ASGI; the
FastAPI route below documents it in the OpenAPI schema and answers if the fast lane is not mounted.
"""

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.fastlane import respond
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.schemas.chat import ChatRequest

router = APIRouter(route_class=V4Route)


@router.post("/chat", response_class=JSONBytes)
async def chat(body: ChatRequest, org_id: Organization, request: Request) -> Response:
    return await respond(request.app.state.generation, org_id, body)
