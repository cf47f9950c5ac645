"""Bodies of the generation variants: ``/completion*`` and the deployed / by-config ``/chat-*`` routes.

All share ``GenerationRequest``'s fields; they differ in where the config comes from (inline
``model_config``, the config deployed to ``environment``, or ``model_config_id``) and in chat-only
(``messages``, tools, ``response_format``) versus completion-only (``logprobs``, ``suffix``) fields.
"""

from pydantic import ConfigDict, Field

from loopgate.schemas.chat import GenerationRequest
from loopgate.schemas.common import ChatMessage, ResponseFormat, ToolChoiceValue
from loopgate.schemas.model_configs import ModelConfigCompletionRequest

# Built when first used, not at import: ``POST /v4/chat`` never validates these, and building their
# validators took ~20 ms of every start (the FastAPI app, built after start-up, builds them then).
_LATE = ConfigDict(defer_build=True)


class CompletionFields(GenerationRequest):
    model_config = _LATE
    logprobs: int | None = Field(default=None, ge=0)
    suffix: str | None = None


class CompletionRequest(CompletionFields):
    config: ModelConfigCompletionRequest = Field(alias="model_config")


class CompletionDeployedRequest(CompletionFields):
    environment: str | None = None


class CompletionModelConfigRequest(CompletionFields):
    model_config_id: str


class ChatFields(GenerationRequest):
    """The chat-only fields of ChatRequest, for the variants without an inline config."""

    model_config = _LATE
    messages: list[ChatMessage]
    tool_choice: ToolChoiceValue | None = None
    tool_call: str | dict[str, str] | None = None
    response_format: ResponseFormat | None = None


class ChatDeployedRequest(ChatFields):
    environment: str | None = None


class ChatModelConfigRequest(ChatFields):
    model_config_id: str
