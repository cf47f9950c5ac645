"""Bedrock Converse wire translation: OpenAI-shaped messages, tools and tool_choice to Converse blocks, and
Converse answers back to generations (the HTTP, signing and stream decoding live in bedrock_converse.py)."""

import re
from typing import Any

from loopgate.errors import ProviderError
from loopgate.providers.base import JSON, Generation, Usage, normalise_finish_reason
from loopgate.providers.wire import dumps, tool_arguments

_DATA_URL = re.compile(r"data:image/(\w+);base64,(.*)", re.DOTALL)


def wire_messages(messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    system: list[JSON] = []
    wire: list[JSON] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text(message.get("content"))
            if text:
                system.append({"text": text})
            continue
        blocks = _blocks(message)
        if not blocks:
            continue
        wire_role = "assistant" if role == "assistant" else "user"
        if wire and wire[-1]["role"] == wire_role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": wire_role, "content": blocks})
    return system, wire


def _blocks(message: JSON) -> list[JSON]:
    content = message.get("content")
    if message.get("role") == "tool":
        result = {"toolUseId": message.get("tool_call_id"), "content": [{"text": _text(content)}]}
        return [{"toolResult": result}]
    blocks: list[JSON] = []
    if isinstance(content, str):
        if content:
            blocks.append({"text": content})
    else:
        for part in content or ():
            if part.get("type") == "text" and part.get("text"):
                blocks.append({"text": part["text"]})
            elif part.get("type") == "image_url":
                blocks.append(_image((part.get("image_url") or {}).get("url", "")))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        use = {
            "toolUseId": call.get("id"),
            "name": function.get("name", ""),
            "input": tool_arguments(function.get("arguments")),
        }
        blocks.append({"toolUse": use})
    return blocks


def _image(url: str) -> JSON:
    found = _DATA_URL.match(url)
    if not found:
        raise ProviderError(
            "Bedrock takes images as data URLs (data:image/png;base64,...), not links",
            origin="Bedrock",
            status_code=400,
        )
    image_format = "jpeg" if found.group(1) == "jpg" else found.group(1)
    return {"image": {"format": image_format, "source": {"bytes": found.group(2)}}}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def tool_config(tools: list[JSON] | None, choice: str | JSON | None) -> JSON | None:
    if not tools or choice == "none":
        return None
    specs = []
    for tool in tools:
        function = tool.get("function") or tool
        spec: JSON = {"name": function.get("name", "")}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": spec})
    config: JSON = {"tools": specs}
    if isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name", "")}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


# -- response translation ---------------------------------------------------------------------------------


def _tool_call(use: JSON) -> JSON:
    arguments = use.get("input")
    return {
        "id": use.get("toolUseId"),
        "type": "function",
        "function": {
            "name": use.get("name", ""),
            "arguments": arguments if isinstance(arguments, str) else dumps(arguments or {}),
        },
    }


def generation(index: int, response: JSON) -> Generation:
    content = ((response.get("output") or {}).get("message") or {}).get("content") or ()
    text = "".join(block["text"] for block in content if isinstance(block.get("text"), str))
    calls = [_tool_call(block["toolUse"]) for block in content if block.get("toolUse")]
    return Generation(
        index=index,
        raw_output=text,
        finish_reason=normalise_finish_reason(response.get("stopReason")),
        tool_calls=calls or None,
    )


def usage_of(usage: JSON | None) -> Usage | None:
    if not usage or "inputTokens" not in usage:
        return None
    return Usage(int(usage["inputTokens"]), int(usage.get("outputTokens") or 0))
