"""Wire models of the logs group: ``POST /v4/logs`` (LogRequest), ``PATCH /v4/logs[/{id}]`` (UpdateLogRequest)
and the inline configs a log may carry."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from loopgate.schemas.common import ChatMessage, ModelConfigChatRequest, ModelEndpoints, WireModel
from loopgate.schemas.feedback import Feedback, TolerantModel

Judgment = bool | int | float | list[str] | str
# Bounds of the columns these land in: beyond them PostgreSQL (and SQLite, for integers) would fail the
# insert, so they are a 422 here instead.
Label = Annotated[str, Field(max_length=255)]
Count = Annotated[int, Field(ge=0, lt=2**63)]


class ModelConfigRequest(ModelConfigChatRequest):
    """A model config inline in a log. Unlike a chat's, ``endpoint`` defaults to ``complete`` (the spec's
    default) and a ``prompt_template`` is allowed."""

    type: Literal["model"] = "model"
    endpoint: ModelEndpoints = ModelEndpoints.COMPLETE
    prompt_template: str | None = None


class ToolConfigRequest(WireModel):
    type: Literal["tool"]
    name: Label  # the name of the tool config version it is stored as
    description: str | None = None
    strict: bool | None = None
    parameters: dict[str, Any] | None = None
    source: Literal["inline", "organization"] | None = None
    source_code: str | None = None
    other: dict[str, Any] | None = None
    preset_name: str | None = None


def _config_kind(value: Any) -> str:
    """``type`` is optional on model configs, so anything that is not explicitly a tool is a model config."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "tool" if kind == "tool" else "model"


InlineConfig = Annotated[
    Annotated[ModelConfigRequest, Tag("model")] | Annotated[ToolConfigRequest, Tag("tool")],
    Discriminator(_config_kind),
]


class LogRequest(TolerantModel):
    project: Label | None = None
    project_id: str | None = None
    session_id: str | None = None
    session_reference_id: Label | None = None
    parent_id: str | None = None
    parent_reference_id: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    source: Label | None = None
    metadata: dict[str, Any] | None = None
    save: bool = True
    source_datapoint_id: Annotated[str, Field(max_length=64)] | None = None
    reference_id: Label | None = None
    messages: list[ChatMessage] | None = None
    output: str | None = None
    judgment: Judgment | None = None
    config_id: str | None = None
    config: InlineConfig | None = None
    environment: Label | None = None
    feedback: Feedback | list[Feedback] | None = None
    created_at: datetime | None = None
    error: str | None = None
    stdout: str | None = None
    duration: float | None = None
    output_message: ChatMessage | None = None
    prompt_tokens: Count | None = None
    output_tokens: Count | None = None
    prompt_cost: float | None = None
    output_cost: float | None = None
    provider_request: dict[str, Any] | None = None
    provider_response: dict[str, Any] | None = None

    def feedback_items(self) -> list[Feedback]:
        if self.feedback is None:
            return []
        return self.feedback if isinstance(self.feedback, list) else [self.feedback]


class UpdateLogRequest(TolerantModel):
    """Only the fields a caller sends are changed (``model_fields_set``); an explicit null clears one."""

    output: str | None = None
    error: str | None = None
    duration: float | None = None
