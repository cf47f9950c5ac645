"""Request bodies of ``/evaluators`` (responses are built as dicts in ``service/evaluators.py``).

Every type v4 names is accepted and stored; which types an evaluation can use is decided when the
evaluation is created (``service/evaluations.py``), not here.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from loopgate.schemas.model_configs import LegacyBody, ModelConfigCompletionRequest, PathEcho

Name = Annotated[str, Field(min_length=1, max_length=255)]
Text255 = Annotated[str, Field(max_length=255)]  # the width of evaluators.description


class EvaluatorType(StrEnum):
    PYTHON = "python"
    LLM = "llm"
    HUMAN = "human"
    EXTERNAL = "external"


class EvaluatorArgumentsType(StrEnum):
    TARGET_FREE = "target_free"
    TARGET_REQUIRED = "target_required"


class EvaluatorReturnType(StrEnum):
    BOOLEAN = "boolean"
    NUMBER = "number"
    SELECT = "select"
    MULTI_SELECT = "multi_select"
    TEXT = "text"


class CreateEvaluatorRequest(LegacyBody):
    name: Name
    description: Text255
    arguments_type: EvaluatorArgumentsType
    return_type: EvaluatorReturnType
    type: EvaluatorType
    code: str | None = None
    config: ModelConfigCompletionRequest | None = Field(default=None, alias="model_config")


class UpdateEvaluatorRequest(LegacyBody):
    """Every field optional; one sent as null is left as it was (a type cannot be changed, as in v4)."""

    name: Name | None = None
    description: Text255 | None = None
    arguments_type: EvaluatorArgumentsType | None = None
    return_type: EvaluatorReturnType | None = None
    code: str | None = None
    config: ModelConfigCompletionRequest | None = Field(default=None, alias="model_config")
    id: PathEcho = None
