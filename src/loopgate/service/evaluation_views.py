"""What the SDK sees of an evaluation: EvaluationResponse and EvaluationDatapointSnapshotResponse, built from
stored rows (EvaluationResultResponse is in log_views.py, ModelConfigEvaluatorAggregateResponse in
project_views.py: a config's list shows it too)."""

from typing import Any

from loopgate.service.datasets import dataset_response
from loopgate.service.evaluators import evaluator_response
from loopgate.service.log_views import timestamp
from loopgate.service.project_views import config_view, evaluator_aggregates
from loopgate.store.datasets import DatasetRow
from loopgate.store.evaluations import EvaluationRow
from loopgate.store.evaluators import EvaluatorRow
from loopgate.store.model_configs import ConfigRow


def dataset_version_id(row: EvaluationRow) -> str:
    """Dataset versions are a counter per dataset (``datasets.version``), not rows with ids of their own:
    the version an evaluation pinned is named by its dataset and number."""
    return f"{row.dataset_id}.v{row.dataset_version}"


def evaluation_response(
    row: EvaluationRow,
    *,
    config: ConfigRow,
    evaluators: list[EvaluatorRow],
    dataset: DatasetRow,
    snapshot_count: int,
    aggregates: dict[str, float] | None,
) -> dict[str, Any]:
    current = dataset_response(dataset)
    response: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "config": config_view(config),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "evaluators": [evaluator_response(evaluator) for evaluator in evaluators],
        "dataset": current,
        "dataset_version_id": dataset_version_id(row),
        # The dataset as the run sees it: its datapoints up to the pinned version.
        "dataset_snapshot": {**current, "datapoint_count": snapshot_count},
    }
    if aggregates is not None:
        response["evaluator_aggregates"] = evaluator_aggregates(row.config_id, evaluators, aggregates)
    return response
