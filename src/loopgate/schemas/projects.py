"""Project, feedback-type and deployment request bodies and query enums (responses are built as dicts in
``service/project_views.py``)."""

from enum import StrEnum

from pydantic import Field

from loopgate.schemas.common import DirectoryRef, Label, WireModel
from loopgate.schemas.model_configs import LegacyBody, PathEcho


class ProjectSortBy(StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class UpdateProjectRequest(LegacyBody):
    name: Label | None = None
    active_config_id: str | None = None
    directory_id: DirectoryRef | None = None
    id: PathEcho = None


class FeedbackClass(StrEnum):
    SELECT = "select"
    MULTI_SELECT = "multi_select"
    TEXT = "text"
    NUMBER = "number"


class LabelSentiment(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    UNSET = "unset"


class FeedbackLabelRequest(WireModel):
    value: str
    sentiment: LabelSentiment = LabelSentiment.UNSET


class FeedbackType(WireModel):
    type: str
    feedback_class: FeedbackClass = Field(alias="class")
    values: list[FeedbackLabelRequest] | None = None


class FeedbackTypeRequest(FeedbackType, LegacyBody):
    """``POST /projects/{id}/feedback-types``: one type."""

    id: PathEcho = None


class CreateProjectRequest(LegacyBody):
    name: Label
    directory_id: DirectoryRef | None = None
    # Gone from the 4.0.1 spec but still in the requests of TypeScript SDK 0.5.x (and the older spec):
    # the project's own feedback types, created with it.
    feedback_types: list[FeedbackType] | None = None


class EnvironmentRequest(WireModel):
    id: str
    name: str | None = None


class EnvironmentProjectConfigRequest(LegacyBody):
    config_id: str
    environments: list[EnvironmentRequest] | None = None
    projectId: PathEcho = None
