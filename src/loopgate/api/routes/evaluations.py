"""v4 routes: evaluations the client runs itself (``/projects/{project_id}/evaluations``, ``/evaluations``,
``/evaluations/{id}/...``); what is supported is in ``service/evaluations.py``.

Pages differ as in the spec: ``GET /evaluations`` counts from page 0 (size 50), ``GET
/evaluations/{id}/datapoints`` from page 1 (size 10). ``evaluatee_id`` is accepted everywhere and ignored:
a run evaluates one config.

``GET /evaluations`` also takes the sorts and filters the spec describes in prose only, as ``GET /logs``
takes its own (the SDK never sends them); where the spec is silent, loopgate decides:

* ``sort=<column>.<asc|desc>``, repeatable: the first sort decides, later ones break its ties, and the
  default order (oldest first) breaks the rest. ``dataset`` and ``config`` sort by name as the database
  collates it (then by id, so two of one name stay apart); ``status`` in the order of a run's life:
  pending, running, completed, cancelled; ``evaluator-<evaluator id>`` by the run's aggregate_value for
  that evaluator (the mean of its results, true 1, false 0), runs without one last either way, as are all
  runs for an id no run has. Any other column or order is a 422 at ``["query", "sort"]``.
* ``dataset_filter`` and ``config_filter`` match a dataset (config) by id or by exact name, so both the
  ``evts_``/``config_`` ids of the responses and the names the UI shows work; ``status_filter`` takes
  v4's statuses (another value is a 422); ``id_filter`` is another spelling of ``id``, and the two lists
  join. Each filter is repeatable, meaning any of its values; different filters all apply.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.paging import PageFromOne, PageFromZero, PageSize, sort_keys
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.schemas.evaluations import (
    AddEvaluatorsRequest,
    CreateEvaluationLogRequest,
    CreateEvaluationRequest,
    CreateEvaluationResultLogRequest,
    EvaluationStatus,
    UpdateEvaluationStatusRequest,
)
from loopgate.service.evaluations import EvaluationService
from loopgate.store.evaluations import EvaluationFilter, EvaluationSort

router = APIRouter(route_class=V4Route, tags=["evaluations"])


def _service(request: Request) -> EvaluationService:
    service: EvaluationService = request.app.state.evaluations
    return service


Evaluations = Annotated[EvaluationService, Depends(_service)]
Aggregates = Annotated[bool, Query(description="Add each evaluator's mean result.")]
Evaluatee = Annotated[str | None, Query(description="Accepted and ignored.")]
Many = Annotated[list[str] | None, Query()]
_SORTABLE = ("dataset", "config", "status")


def _sorts(values: list[str]) -> list[EvaluationSort]:
    keys = sort_keys(values, _SORTABLE, "evaluator-<evaluator id>")
    return [EvaluationSort(column, descending) for column, descending in keys]


@router.post("/projects/{project_id}/evaluations", status_code=201, response_class=JSONBytes)
async def create_evaluation(
    project_id: str, body: CreateEvaluationRequest, org_id: Organization, service: Evaluations
) -> Response:
    return JSONBytes(await service.create(org_id, project_id, body), status_code=201)


@router.get("/projects/{project_id}/evaluations", response_class=JSONBytes)
async def list_project_evaluations(
    project_id: str,
    org_id: Organization,
    service: Evaluations,
    evaluatee_id: Evaluatee = None,
    evaluator_aggregates: Aggregates = False,
) -> Response:
    return JSONBytes(await service.list_for_project(org_id, project_id, aggregates=evaluator_aggregates))


@router.get("/evaluations", response_class=JSONBytes)
async def list_evaluations(
    org_id: Organization,
    service: Evaluations,
    project_id: Annotated[str, Query()],
    id: Many = None,
    start_date: Annotated[date | None, Query()] = None,
    end_date: Annotated[date | None, Query(description="Inclusive: the whole day counts.")] = None,
    page: PageFromZero = 0,
    size: PageSize = 50,
    evaluatee_id: Evaluatee = None,
    sort: Many = None,
    id_filter: Many = None,
    dataset_filter: Many = None,
    config_filter: Many = None,
    status_filter: Annotated[list[EvaluationStatus] | None, Query()] = None,
) -> Response:
    where = EvaluationFilter(
        evaluation_ids=[*(id or ()), *(id_filter or ())],
        start=datetime.combine(start_date, time(), tzinfo=UTC) if start_date else None,
        end=datetime.combine(end_date, time(), tzinfo=UTC) + timedelta(days=1) if end_date else None,
        datasets=dataset_filter or [],
        configs=config_filter or [],
        statuses=[status.value for status in status_filter or ()],
    )
    return JSONBytes(await service.page(org_id, project_id, where, _sorts(sort or []), page=page, size=size))


@router.get("/evaluations/{id}", response_class=JSONBytes)
async def get_evaluation(
    id: str,
    org_id: Organization,
    service: Evaluations,
    evaluator_aggregates: Aggregates = False,
    evaluatee_id: Evaluatee = None,
) -> Response:
    return JSONBytes(await service.get(org_id, id, aggregates=evaluator_aggregates))


@router.get("/evaluations/{id}/datapoints", response_class=JSONBytes)
async def list_evaluation_datapoints(
    id: str,
    org_id: Organization,
    service: Evaluations,
    page: PageFromOne = 1,
    size: PageSize = 10,
    evaluatee_id: Evaluatee = None,
) -> Response:
    return JSONBytes(await service.datapoints(org_id, id, page=page, size=size))


@router.post("/evaluations/{evaluation_id}/log", status_code=201, response_class=JSONBytes)
async def log_evaluation_datapoint(
    evaluation_id: str,
    body: CreateEvaluationLogRequest,
    org_id: Organization,
    service: Evaluations,
    evaluatee_id: Evaluatee = None,
) -> Response:
    """Answers once the log is committed (the log writer's hand-over returns after its commit)."""
    return JSONBytes(await service.log(org_id, evaluation_id, body), status_code=201)


@router.post("/evaluations/{evaluation_id}/result", status_code=201, response_class=JSONBytes)
async def post_evaluation_result(
    evaluation_id: str,
    body: CreateEvaluationResultLogRequest,
    org_id: Organization,
    service: Evaluations,
    evaluatee_id: Evaluatee = None,
) -> Response:
    return JSONBytes(await service.result(org_id, evaluation_id, body), status_code=201)


@router.patch("/evaluations/{id}/status", response_class=JSONBytes)
async def update_evaluation_status(
    id: str, body: UpdateEvaluationStatusRequest, org_id: Organization, service: Evaluations
) -> Response:
    return JSONBytes(await service.update_status(org_id, id, body))


@router.patch("/evaluations/{id}/evaluators", response_class=JSONBytes)
async def add_evaluation_evaluators(
    id: str, body: AddEvaluatorsRequest, org_id: Organization, service: Evaluations
) -> Response:
    return JSONBytes(await service.add_evaluators(org_id, id, body))
