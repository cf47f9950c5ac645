"""Wire models of ``POST /v4/feedback`` and of feedback attached to a log (``LogRequest.feedback``)."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# bool before the numbers: pydantic's smart union keeps JSON ``true`` a bool rather than coercing it to 1.
FeedbackValue = bool | int | float | list[str] | str
Label = Annotated[str, Field(max_length=255)]  # the width of feedback.type / feedback.user


class TolerantModel(BaseModel):
    """Bodies whose schema leaves extra keys open: ignored, so 0.5.18's stray ``provider_api_keys`` passes."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Feedback(TolerantModel):
    """One feedback item recorded together with a new log (its ``data_id`` is the log being created)."""

    type: Label
    value: FeedbackValue
    data_id: str | None = None
    user: Label | None = None
    created_at: datetime | None = None


class FeedbackRequest(TolerantModel):
    type: Label
    value: FeedbackValue | None = None
    data_id: str | None = None
    user: Label | None = None
    created_at: datetime | None = None
    unset: bool | None = None


def feedback_response(
    *, feedback_id: str, type_: str, value: Any, data_id: str, user: str | None, created_at: datetime
) -> dict[str, Any]:
    """FeedbackResponse: every field present."""
    return {
        "id": feedback_id,
        "type": type_,
        "value": value,
        "data_id": data_id,
        "user": user,
        "created_at": created_at.isoformat(),
    }
