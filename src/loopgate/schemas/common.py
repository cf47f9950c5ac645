"""Wire models shared by several route groups: messages, tool calls, tools, response format, provider keys."""

from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# The widths of the String columns request values are stored in: beyond them PostgreSQL refuses the insert
# (a 500), so they are a 422 when the request is read, on SQLite as well.
Label = Annotated[str, Field(max_length=255)]
DatapointRef = Annotated[str, Field(max_length=64)]  # logs.source_datapoint_id
DirectoryRef = Annotated[str, Field(max_length=40)]  # projects.directory_id, an id column


class WireModel(BaseModel):
    """Base for request bodies: unknown keys are rejected like the original server did (additionalProperties
    false), and ``model_*`` field names are allowed because the API uses ``model_config_id``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


class LenientModel(BaseModel):
    """Nested objects whose schema the spec leaves open (messages, tool calls): extra keys are ignored."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class ChatRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class ModelProviders(StrEnum):
    OPENAI = "openai"
    OPENAI_AZURE = "openai_azure"
    MOCK = "mock"
    ANTHROPIC = "anthropic"
    BEDROCK = "bedrock"
    COHERE = "cohere"
    REPLICATE = "replicate"
    GOOGLE = "google"
    GROQ = "groq"


class ModelEndpoints(StrEnum):
    COMPLETE = "complete"
    CHAT = "chat"
    EDIT = "edit"


def _json_encoded(arguments: Any) -> Any:
    """v4's arguments are a JSON-encoded string. SDK 0.5.18 sent the object itself: it is kept encoded, so
    that 0.7.35 and TypeScript clients (which type the field as a string) can read the log back."""
    if arguments is None or isinstance(arguments, str):
        return arguments
    return orjson.dumps(arguments).decode()


class FunctionTool(LenientModel):
    name: str
    arguments: Annotated[Any, AfterValidator(_json_encoded)] = None


class ToolCall(LenientModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionTool


class ImageUrl(LenientModel):
    url: str
    detail: Literal["high", "low", "auto"] | None = None


class TextChatContent(LenientModel):
    type: Literal["text"]
    text: str


class ImageChatContent(LenientModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class ChatMessage(LenientModel):
    role: ChatRole
    content: str | list[TextChatContent | ImageChatContent] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call: FunctionTool | None = None


class FunctionToolChoice(LenientModel):
    name: str


class ToolChoice(LenientModel):
    type: Literal["function"]
    function: FunctionToolChoice


class ResponseFormat(LenientModel):
    type: Literal["json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ModelConfigTool(LenientModel):
    """An inline function definition (ModelConfigToolRequest) or a reference to an organization tool
    (LinkedToolRequest, ``source: organization`` with an ``oc_`` id)."""

    name: str | None = None
    id: str | None = None
    description: str | None = None
    strict: bool | None = None
    parameters: dict[str, Any] | None = None
    source: Literal["inline", "organization"] | None = None
    source_code: str | None = None
    other: dict[str, Any] | None = None
    preset_name: str | None = None


LINKED_TOOLS_UNAVAILABLE = (
    "Linked organization tools are not available on this server; define the tool inline with a name"
)


def _named(tool: ModelConfigTool) -> ModelConfigTool:
    if not tool.name:
        raise ValueError(LINKED_TOOLS_UNAVAILABLE)
    return tool


# A tool of a config in a request: inline, with a name. A LinkedToolRequest names an organization tool
# (``oc_...``) by id; this server has none, so such a config could never run, and ToolResponse, which
# echoes it, requires the name it lacks. Stored configs keep reading ModelConfigTool.
InlineTool = Annotated[ModelConfigTool, AfterValidator(_named)]


# A credential travels in an HTTP header: a line break or another control character in it cannot be sent
# (the HTTP client refused it, a 500) and must not be (it would start another header).
def _sendable(value: str) -> str:
    if any(ord(character) < 0x20 or character == "\x7f" for character in value):
        raise ValueError("must not contain a line break or another control character")
    return value


Credential = Annotated[str, AfterValidator(_sendable)]


class ProviderApiKeys(BaseModel):
    """Per-request provider credentials. Used for the one call and never stored or logged."""

    model_config = ConfigDict(extra="ignore")

    openai: Credential | None = None
    ai21: Credential | None = None
    mock: Credential | None = None
    anthropic: Credential | None = None
    bedrock: Credential | None = None
    cohere: Credential | None = None
    openai_azure: Credential | None = None
    openai_azure_endpoint: Credential | None = None


ToolChoiceValue = Literal["none", "auto", "required"] | ToolChoice


class ModelParameters(BaseModel):
    """The parameters every kind of model config carries, with the v4 defaults. Subclasses pick the
    strictness (request bodies forbid unknown keys, stored configs are read leniently)."""

    name: str | None = None
    description: str | None = None
    provider: ModelProviders = ModelProviders.OPENAI
    model: str
    max_tokens: int = -1
    temperature: float = 1
    top_p: float = 1
    stop: str | list[str] | None = None
    presence_penalty: float = 0
    frequency_penalty: float = 0
    other: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    response_format: ResponseFormat | None = None


class ModelConfigChatRequest(ModelParameters, WireModel):
    name: Label | None = None  # a new version is stored under its name, or its model when it has none
    model: Label
    endpoint: ModelEndpoints = ModelEndpoints.CHAT
    chat_template: list[ChatMessage] | None = None
    tools: list[InlineTool] | None = None
