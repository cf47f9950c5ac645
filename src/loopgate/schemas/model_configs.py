"""Model-config wire models beyond the chat one: the completion config, the register body of
``POST /model-configs``, the ``.prompt`` deserialize body, and the lenient view of a stored config."""

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from loopgate.schemas.common import (
    ChatMessage,
    InlineTool,
    Label,
    LenientModel,
    ModelConfigTool,
    ModelEndpoints,
    ModelParameters,
    WireModel,
)

# Built when first used, not at import: ``POST /v4/chat`` with an inline chat config (the common request)
# never validates these, and building them at import took ~10 ms of every start.
_LATE = ConfigDict(defer_build=True)


class ModelConfigCompletionRequest(ModelParameters, WireModel):
    model_config = _LATE
    name: Label | None = None  # as ModelConfigChatRequest's
    model: Label
    endpoint: ModelEndpoints = ModelEndpoints.COMPLETE
    # Required by the SDK, optional in the spec: a completion without one is refused when it runs.
    prompt_template: str | None = None


class LegacyBody(WireModel):
    """Request bodies that SDK 0.5.18 may send ``provider_api_keys`` in (it adds the key to every JSON
    object body); the key is accepted and ignored rather than rejected as unknown."""

    model_config = _LATE
    provider_api_keys: dict[str, Any] | None = Field(default=None, exclude=True)


# TypeScript SDK 0.5.x builds a request body from the very object that holds the path parameters, so the
# body repeats them under the SDK's own names: PATCH /projects/{id} arrives as {"id": ..., "name": ...},
# POST /projects/{project_id}/datasets with "projectId". A body declares the names its path is echoed under
# as PathEcho fields: accepted, never used (the path is what counts), so any other unknown key is still a 422.
PathEcho = Annotated[str | None, Field(exclude=True)]


class ProjectModelConfigRequest(ModelParameters, LegacyBody):
    """``POST /model-configs``: a chat or completion config, registered into a project."""

    name: Label | None = None  # as ModelConfigChatRequest's
    model: Label
    project: Label | None = Field(default=None, exclude=True)
    project_id: str | None = Field(default=None, exclude=True)
    prompt_template: str | None = None
    chat_template: list[ChatMessage] | None = None
    endpoint: ModelEndpoints = ModelEndpoints.COMPLETE
    tools: list[InlineTool] | None = None


class DeserializeRequest(LegacyBody):
    """``Body_ModelConfigs_deserialize``: the text of a ``.prompt`` file."""

    config: str


class StoredModelConfig(ModelParameters, LenientModel):
    """A stored config body read back to run it: every parameter any config kind may carry."""

    model_config = _LATE
    endpoint: ModelEndpoints | None = None
    prompt_template: str | None = None
    chat_template: list[ChatMessage] | None = None
    tools: list[ModelConfigTool] | None = None
