"""ChatRequest: the body of ``POST /v4/chat``."""

from typing import Any

from pydantic import Field

from loopgate.schemas.common import (
    ChatMessage,
    DatapointRef,
    Label,
    ModelConfigChatRequest,
    ProviderApiKeys,
    ResponseFormat,
    ToolChoiceValue,
    WireModel,
)


class GenerationRequest(WireModel):
    """Fields every generation endpoint shares (chat, completion and their deployed / by-config variants)."""

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
    source_datapoint_id: DatapointRef | None = None
    provider_api_keys: ProviderApiKeys | None = None
    num_samples: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    user: Label | None = None
    seed: int | None = None
    return_inputs: bool = True


class ChatRequest(GenerationRequest):
    messages: list[ChatMessage]
    tool_choice: ToolChoiceValue | None = None
    tool_call: str | dict[str, str] | None = None
    response_format: ResponseFormat | None = None
    config: ModelConfigChatRequest = Field(alias="model_config")
