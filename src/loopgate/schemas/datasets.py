"""Request bodies of ``/datasets`` and ``/datapoints`` (responses are built as dicts in
``service/datasets.py``).

Every object body derives from ``LegacyBody``: unknown keys are a 422, except the ``provider_api_keys`` SDK
0.5.18 adds to every JSON object it sends.
"""

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from loopgate.schemas.common import ChatMessage
from loopgate.schemas.model_configs import LegacyBody, PathEcho

Text255 = Annotated[str, Field(max_length=255)]  # the width of datasets.name / datasets.description


class CreateDatasetRequest(LegacyBody):
    name: Text255
    description: Text255
    projectId: PathEcho = None


class UpdateDatasetRequest(LegacyBody):
    name: Text255 | None = None
    description: Text255 | None = None
    id: PathEcho = None


class CreateDatapointRequest(LegacyBody):
    inputs: dict[str, str] | None = None
    messages: list[ChatMessage] | None = None
    target: dict[str, Any] | None = None


class UpdateDatapointRequest(CreateDatapointRequest):
    """0.5.18's ``UpdateDatapointRequest``: the same three fields, each replaced only when sent."""

    id: PathEcho = None


class CreateDatapointsByLogsRequest(LegacyBody):
    log_ids: list[str]


def _body_kind(value: Any) -> str:
    """Which member of the body union a request is: decided by its shape, not by trying each in turn, so
    a bad body gets the errors of the member it meant (``{"log_ids": ...}`` is never a datapoint)."""
    if isinstance(value, list):
        return "datapoints"
    if isinstance(value, dict) and "log_ids" in value:
        return "logs"
    return "datapoint"


CreateDatapointsBody = Annotated[
    Annotated[CreateDatapointsByLogsRequest, Tag("logs")]
    | Annotated[CreateDatapointRequest, Tag("datapoint")]
    | Annotated[list[CreateDatapointRequest], Tag("datapoints")],
    Discriminator(_body_kind),
]
