"""The body of ``POST /v1/chat/completions``: OpenAI's Chat Completions request, as the official SDKs send it.

Only what loopgate translates is declared (and checked, so a bad value is a 400 naming OpenAI's parameter).
Every other key -- ``logprobs``, ``parallel_tool_calls``, ``reasoning_effort``, a server-specific
``extra_body`` field such as vLLM's ``top_k`` -- is kept in ``model_extra`` and forwarded to the provider
as the model config's ``other``, as the client sent it: the upstream, not loopgate, decides what it accepts.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from loopgate.schemas.common import (
    ImageChatContent,
    LenientModel,
    TextChatContent,
    ToolCall,
    ToolChoiceValue,
)


class Message(LenientModel):
    """A message in OpenAI's shape. ``developer`` is OpenAI's newer name for ``system`` (its API treats the
    two alike), so it is logged and sent on as ``system``; the deprecated ``function`` role is refused."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextChatContent | ImageChatContent] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class FunctionDefinition(LenientModel):
    name: Annotated[str, StringConstraints(min_length=1)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(LenientModel):
    type: Literal["function"]
    function: FunctionDefinition


class ResponseFormat(LenientModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(LenientModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # extra="allow": undeclared keys are forwarded (see the module docstring), not refused.
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: Annotated[str, StringConstraints(min_length=1)]
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoiceValue | None = None
    response_format: ResponseFormat | None = None
    # Loopgate's: stored as the log's metadata (OpenAI's values are strings), not sent upstream.
    metadata: dict[str, str] | None = None
