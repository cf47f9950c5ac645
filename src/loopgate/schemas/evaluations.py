"""Request bodies of ``/evaluations`` (responses are built as dicts in ``service/evaluation_views.py``).

``result`` keeps JSON's own types: ``true`` is a boolean and ``1`` a number (pydantic's lax mode would read
one as the other), so a value can be checked against its evaluator's ``return_type``.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from loopgate.schemas.logs import LogRequest
from loopgate.schemas.model_configs import LegacyBody, PathEcho


class EvaluationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CreateEvaluationRequest(LegacyBody):
    """``provider_api_keys`` (from LegacyBody): the keys a run loopgate generates (``hl_generated``) calls its
    providers with, held in the memory of the process that runs it and never stored."""

    config_id: str
    evaluator_ids: list[str]
    dataset_id: str
    hl_generated: bool = True
    name: Annotated[str, Field(max_length=255)] | None = None
    projectId: PathEcho = None


class CreateEvaluationLogRequest(LegacyBody):
    datapoint_id: str
    log: LogRequest


class CreateEvaluationResultLogRequest(LegacyBody):
    log_id: str
    evaluator_id: str
    result: StrictBool | StrictInt | StrictFloat | None = None
    error: str | None = None
    evaluationRunExternalId: PathEcho = None


class UpdateEvaluationStatusRequest(LegacyBody):
    status: EvaluationStatus
    id: PathEcho = None


class AddEvaluatorsRequest(LegacyBody):
    evaluator_ids: list[str] | None = None
    evaluator_version_ids: list[str] | None = None
