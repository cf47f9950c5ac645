"""v4 routes: evaluators (``/evaluators``, ``/evaluators/{id}``); the list is a plain array, as in v4."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.schemas.evaluators import CreateEvaluatorRequest, UpdateEvaluatorRequest
from loopgate.service.evaluators import EvaluatorService

router = APIRouter(route_class=V4Route, tags=["evaluators"])


def _service(request: Request) -> EvaluatorService:
    service: EvaluatorService = request.app.state.evaluators
    return service


Evaluators = Annotated[EvaluatorService, Depends(_service)]


@router.get("/evaluators", response_class=JSONBytes)
async def list_evaluators(org_id: Organization, service: Evaluators) -> Response:
    return JSONBytes(await service.all(org_id))


@router.post("/evaluators", status_code=201, response_class=JSONBytes)
async def create_evaluator(
    body: CreateEvaluatorRequest, org_id: Organization, service: Evaluators
) -> Response:
    return JSONBytes(await service.create(org_id, body), status_code=201)


@router.get("/evaluators/{id}", response_class=JSONBytes)
async def get_evaluator(id: str, org_id: Organization, service: Evaluators) -> Response:
    return JSONBytes(await service.get(org_id, id))


@router.patch("/evaluators/{id}", response_class=JSONBytes)
async def update_evaluator(
    id: str, body: UpdateEvaluatorRequest, org_id: Organization, service: Evaluators
) -> Response:
    return JSONBytes(await service.update(org_id, id, body))


@router.delete("/evaluators/{id}", status_code=204)
async def delete_evaluator(id: str, org_id: Organization, service: Evaluators) -> Response:
    await service.delete(org_id, id)
    return Response(status_code=204)
