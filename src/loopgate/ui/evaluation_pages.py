"""Datasets and evaluations: a project's datasets and runs, one dataset's datapoints, one run's results.

Read-only: datasets and evaluations are made through the API (an evaluation is run by the client, which
posts each datapoint's log and each result). The pages read through the same services as ``/v4``, so
another organization's dataset or run reads as "Not found", exactly as in the API.
"""

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.service.datasets import DatasetService
from loopgate.service.evaluations import EvaluationService
from loopgate.store.evaluations import EvaluationFilter
from loopgate.ui import views
from loopgate.ui.project_pages import PAGE_SIZE, PageNumber, project_context
from loopgate.ui.render import page
from loopgate.ui.routing import PageRoute, with_query
from loopgate.ui.session import SignedIn

router = APIRouter(route_class=PageRoute)


def _datasets(request: Request) -> DatasetService:
    service: DatasetService = request.app.state.datasets
    return service


def _evaluations(request: Request) -> EvaluationService:
    service: EvaluationService = request.app.state.evaluations
    return service


def _pages(request: Request, page_number: int, has_next: bool) -> dict[str, Any]:
    return {
        "page_number": page_number,
        "has_next": has_next,
        "previous_url": with_query(request, page=page_number - 1 if page_number > 2 else None),
        "next_url": with_query(request, page=page_number + 1),
    }


@dataclass(frozen=True, slots=True)
class DatapointView:
    """A datapoint as a table row shows it: the conversation it holds and its target, ready to render."""

    id: str
    inputs: dict[str, Any]
    messages: list[views.MessageView]
    target: dict[str, Any]

    @property
    def expected(self) -> Any:
        """What a run's table shows of the target: the expected output when it is text (a datapoint
        copied from a log has ``{"output": ...}``), else the whole target (a tool call's, say)."""
        output = self.target.get("output")
        return output if isinstance(output, str) and output else self.target

    @property
    def excerpt(self) -> str:
        """The last user message: what a reader scans the table for."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""


def datapoint_view(datapoint: dict[str, Any]) -> DatapointView:
    return DatapointView(
        id=datapoint["id"],
        inputs=datapoint["inputs"],
        messages=[views.message_view(message) for message in datapoint["messages"]],
        target=datapoint["target"],
    )


@router.get("/ui/projects/{project_id}/datasets")
async def dataset_list(request: Request, viewer: SignedIn, project_id: str) -> Response:
    context = await project_context(request, viewer, project_id, "datasets")
    datasets = await _datasets(request).list_for_project(viewer.org_id, project_id)
    return page(
        "datasets.html",
        title=f"{context['project'].name} · Datasets",
        **context,
        datasets=sorted(datasets, key=lambda dataset: dataset["updated_at"], reverse=True),
    )


@router.get("/ui/datasets/{dataset_id}")
async def dataset_detail(
    request: Request, viewer: SignedIn, dataset_id: str, page_number: PageNumber = 1
) -> Response:
    service = _datasets(request)
    dataset = await service.get(viewer.org_id, dataset_id)
    found = await service.page(viewer.org_id, dataset_id, page=page_number - 1, size=PAGE_SIZE)
    context = await _owner_context(request, viewer, dataset["project_id"], "datasets")
    context["crumbs"].append((dataset["name"], f"/ui/datasets/{dataset_id}"))
    return page(
        "dataset.html",
        title=f"{dataset['name']} · Dataset",
        **context,
        dataset=dataset,
        datapoints=[datapoint_view(datapoint) for datapoint in found["records"]],
        first_row=(page_number - 1) * PAGE_SIZE + 1,
        **_pages(request, page_number, page_number * PAGE_SIZE < found["total"]),
    )


async def _owner_context(request: Request, viewer: SignedIn, project_id: str, tab: str) -> dict[str, Any]:
    """The project header of a dataset's page; a dataset whose project was deleted has none."""
    if project_id:
        return await project_context(request, viewer, project_id, tab)
    return {"viewer": viewer, "project": None, "tab": tab, "crumbs": [("Projects", "/ui/projects")]}


@router.get("/ui/projects/{project_id}/evaluations")
async def evaluation_list(
    request: Request, viewer: SignedIn, project_id: str, page_number: PageNumber = 1
) -> Response:
    context = await project_context(request, viewer, project_id, "evaluations")
    found = await _evaluations(request).page(
        viewer.org_id,
        project_id,
        EvaluationFilter(),
        page=page_number - 1,
        size=PAGE_SIZE,
        aggregates=True,
        newest_first=True,
    )
    evaluations = found["records"]
    return page(
        "evaluations.html",
        title=f"{context['project'].name} · Evaluations",
        **context,
        evaluations=evaluations,
        means={evaluation["id"]: _means(evaluation) for evaluation in evaluations},
        total=found["total"],
        **_pages(request, page_number, page_number * PAGE_SIZE < found["total"]),
    )


def _means(evaluation: dict[str, Any]) -> dict[str, float | None]:
    """evaluator id -> the mean of its results in the run (``evaluator_aggregates``)."""
    return {item["evaluator_id"]: item["aggregate_value"] for item in evaluation["evaluator_aggregates"]}


@dataclass(frozen=True, slots=True)
class RunRow:
    """One datapoint of a run: the datapoint, the log the client posted for it, and each evaluator's
    result on that log (``None``: no result yet)."""

    datapoint: DatapointView
    log: dict[str, Any] | None
    output: views.MessageView | None
    results: list[dict[str, Any] | None]


def run_rows(records: list[dict[str, Any]], evaluator_ids: list[str]) -> list[RunRow]:
    rows = []
    for record in records:
        by_evaluator = {result["evaluator_id"]: result for result in record["evaluation_results"]}
        log = record["log"]
        rows.append(
            RunRow(
                datapoint=datapoint_view(record["datapoint"]),
                log=log,
                output=views.output_view(log) if log is not None else None,
                results=[by_evaluator.get(evaluator_id) for evaluator_id in evaluator_ids],
            )
        )
    return rows


@router.get("/ui/evaluations/{evaluation_id}")
async def evaluation_detail(
    request: Request, viewer: SignedIn, evaluation_id: str, page_number: PageNumber = 1
) -> Response:
    service = _evaluations(request)
    project_id, evaluation, logged = await service.overview(viewer.org_id, evaluation_id)
    found = await service.datapoints(viewer.org_id, evaluation_id, page=page_number, size=PAGE_SIZE)
    context = await project_context(request, viewer, project_id, "evaluations")
    context["crumbs"].append((evaluation["name"] or evaluation_id, f"/ui/evaluations/{evaluation_id}"))
    evaluators = evaluation["evaluators"]
    return page(
        "evaluation.html",
        title=f"{evaluation['name'] or evaluation_id} · Evaluation",
        **context,
        evaluation=evaluation,
        evaluators=evaluators,
        aggregates=_means(evaluation),
        logged=logged,
        rows=run_rows(found["records"], [evaluator["id"] for evaluator in evaluators]),
        versions=context["project"].versions,
        first_row=(page_number - 1) * PAGE_SIZE + 1,
        **_pages(request, page_number, page_number * PAGE_SIZE < found["total"]),
    )
