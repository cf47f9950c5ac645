"""Feedback types of a project: the five v4 defaults plus the project's own.

The defaults carry the labels Humanloop's guides use (``rating``: good / bad; ``action``: copied / saved /
dismissed); ``issue`` takes any label and ``correction`` / ``comment`` are free text. A project registers
more with ``POST /projects/{id}/feedback-types``; registering a type that exists (a default included)
replaces its class and labels -- with ``PATCH /projects/{id}/feedback-types`` decommissioned in v4, that is
the only way to change them.
"""

from typing import Any

from loopgate.errors import RequestInvalid
from loopgate.schemas.projects import FeedbackClass, FeedbackType


def _labels(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"value": value, "sentiment": sentiment} for value, sentiment in pairs]


DEFAULT_FEEDBACK_TYPES: list[dict[str, Any]] = [
    {"type": "rating", "class": "select", "values": _labels(("good", "positive"), ("bad", "negative"))},
    {
        "type": "action",
        "class": "multi_select",
        "values": _labels(("copied", "positive"), ("saved", "positive"), ("dismissed", "negative")),
    },
    {"type": "issue", "class": "multi_select", "values": []},
    {"type": "correction", "class": "text", "values": None},
    {"type": "comment", "class": "text", "values": None},
]

_LABELLED = (FeedbackClass.SELECT, FeedbackClass.MULTI_SELECT)


def effective(custom: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every feedback type of a project (with its class), defaults first; a custom type of a default's
    name replaces it in place."""
    own = {entry["type"]: entry for entry in custom}
    merged = [own.pop(default["type"], default) for default in DEFAULT_FEEDBACK_TYPES]
    return merged + list(own.values())


def model(entry: dict[str, Any]) -> dict[str, Any]:
    """FeedbackTypeModel: ``type`` and ``values`` (the class is kept internally, not part of the model)."""
    return {"type": entry["type"], "values": entry.get("values")}


def register(
    custom: list[dict[str, Any]], request: FeedbackType, loc: tuple[str | int, ...] = ("body",)
) -> list[dict[str, Any]]:
    """The project's custom types with ``request`` added or replaced; errors are located under ``loc``."""
    name = request.type
    if not name.strip():
        raise RequestInvalid([*loc, "type"], "Feedback type must not be empty")
    values: list[dict[str, str]] | None = None
    if request.feedback_class in _LABELLED:
        values = []
        for position, label in enumerate(request.values or ()):
            if any(existing["value"] == label.value for existing in values):
                raise RequestInvalid(
                    [*loc, "values", position, "value"], f"Label '{label.value}' is repeated"
                )
            values.append({"value": label.value, "sentiment": label.sentiment.value})
    elif request.values:
        raise RequestInvalid(
            [*loc, "values"], f"Feedback of class '{request.feedback_class.value}' takes no labels"
        )
    entry = {"type": name, "class": request.feedback_class.value, "values": values}
    return [existing for existing in custom if existing["type"] != name] + [entry]
