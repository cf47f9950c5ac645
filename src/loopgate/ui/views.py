"""Shapes a page draws from LogResponse documents: messages with their tool calls, and a session's tree."""

from dataclasses import dataclass, field
from typing import Any

import orjson

from loopgate.ui.diff import pretty_json


@dataclass(frozen=True, slots=True)
class ToolCallView:
    id: str | None
    name: str
    arguments: str  # pretty JSON when the arguments parse, as sent otherwise


@dataclass(frozen=True, slots=True)
class MessageView:
    role: str
    text: str
    tool_calls: list[ToolCallView]
    tool_call_id: str | None = None
    name: str | None = None


def _arguments(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            return pretty_json(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return raw
    return pretty_json(raw) if raw is not None else ""


def _text(content: Any) -> str:
    """Message content is a string or a list of parts (text, image_url)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    pieces = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, dict) and part.get("type") == "text":
            pieces.append(str(part.get("text", "")))
        elif isinstance(part, dict) and part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            pieces.append(f"[image: {url[:80]}]")
        else:
            pieces.append(orjson.dumps(part).decode())
    return "\n".join(pieces)


def message_view(message: dict[str, Any]) -> MessageView:
    calls = message.get("tool_calls") or []
    if not calls and message.get("tool_call"):  # the deprecated single-call field
        calls = [{"function": message["tool_call"]}]
    return MessageView(
        role=str(message.get("role") or "user"),
        text=_text(message.get("content")),
        tool_calls=[
            ToolCallView(
                id=call.get("id"),
                name=str((call.get("function") or {}).get("name") or "?"),
                arguments=_arguments((call.get("function") or {}).get("arguments")),
            )
            for call in calls
        ],
        tool_call_id=message.get("tool_call_id"),
        name=message.get("name"),
    )


def conversation(log: dict[str, Any]) -> list[MessageView]:
    return [message_view(message) for message in log.get("messages") or []]


def output_view(log: dict[str, Any]) -> MessageView | None:
    """What the model answered: its output message (with tool calls) or the plain output text."""
    if log.get("output_message"):
        return message_view(log["output_message"])
    if log.get("output"):
        return MessageView(role="assistant", text=str(log["output"]), tool_calls=[])
    return None


def model_of(config: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(model, provider) a log's config names: a model config's own, an evaluator's model config's, and
    none for a tool config."""
    if not config:
        return None, None
    if config.get("type") == "evaluator":
        config = config.get("model_config") or {}
    return config.get("model"), config.get("provider")


def tool_names(log: dict[str, Any]) -> list[str]:
    answer = output_view(log)
    return [call.name for call in answer.tool_calls] if answer else []


@dataclass(slots=True)
class TreeNode:
    log: dict[str, Any]
    children: list["TreeNode"] = field(default_factory=list)


def session_tree(datapoints: list[dict[str, Any]]) -> list[TreeNode]:
    """Parent -> children, oldest first at every level. A log whose parent is outside the session (or was
    deleted) is shown as a root, so nothing of the session is hidden."""
    nodes = {log["id"]: TreeNode(log) for log in datapoints}
    roots: list[TreeNode] = []
    for log in datapoints:
        parent = nodes.get(log.get("parent_id") or "")
        (parent.children if parent is not None and parent is not nodes[log["id"]] else roots).append(
            nodes[log["id"]]
        )
    return roots
