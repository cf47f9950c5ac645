"""``GET /v1/models`` and ``GET /v1/models/{id}``: what the OpenAI-compatible door can route to.

``POST /v1/chat/completions`` is not here: like ``POST /v4/chat`` it is served straight from ASGI
(``api/openai_lane.py``), whose auth and OpenAI-shaped errors these routes share. They stay out of the
OpenAPI document, which describes the v4 API.
"""

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.api.openai_lane import error_response, openai_error, organization
from loopgate.api.responses import JSONBytes
from loopgate.errors import LoopgateError
from loopgate.service.openai_compat import OpenAIDoor
from loopgate.service.openai_shapes import error_object

router = APIRouter(prefix="/v1", include_in_schema=False)


@router.get("/models")
async def list_models(request: Request) -> Response:
    try:
        await organization(request.app.state.store, request.headers)
    except LoopgateError as exc:
        return error_response(exc)
    door: OpenAIDoor = request.app.state.openai_door
    return JSONBytes({"object": "list", "data": door.models()})


@router.get("/models/{model:path}")
async def get_model(request: Request, model: str) -> Response:
    try:
        await organization(request.app.state.store, request.headers)
    except LoopgateError as exc:
        return error_response(exc)
    door: OpenAIDoor = request.app.state.openai_door
    found = next((entry for entry in door.models() if entry["id"] == model), None)
    if found is None:
        message = f"The model '{model}' is not listed by this server (GET /v1/models lists what is)"
        return openai_error(404, error_object(message, "invalid_request_error", "model", "model_not_found"))
    return JSONBytes(found)
