"""Translation between the OpenAI chat shape loopgate speaks and Anthropic's Messages API, both ways:
request bodies, response messages, and the fold of a stream's events into one message for the log.
The HTTP side is in ``anthropic_messages.py``."""

from typing import Any

import orjson

from loopgate.providers.base import JSON, Generation, GenerationCall, Usage, normalise_finish_reason

DEFAULT_MAX_TOKENS = 4096

# An error event's type, as the HTTP status Anthropic answers with for it.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


# -- requests ---------------------------------------------------------------------------------------------


def build_request(call: GenerationCall, *, stream: bool) -> JSON:
    system, messages = _messages(call.messages)
    body: JSON = {"model": call.model}
    if system:
        body["system"] = system
    body["messages"] = messages
    body["max_tokens"] = call.max_tokens if call.max_tokens and call.max_tokens > 0 else DEFAULT_MAX_TOKENS
    if stream:
        body["stream"] = True
    stop = [call.stop] if isinstance(call.stop, str) else call.stop
    optional: JSON = {
        "temperature": call.temperature,
        # 1.0 is no nucleus sampling at all; recent Claude models refuse top_p alongside temperature.
        "top_p": call.top_p if call.top_p is not None and call.top_p < 1 else None,
        "stop_sequences": [s for s in stop if s] if stop else None,
        "metadata": {"user_id": call.user} if call.user else None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if call.tools:
        body["tools"] = [_tool(tool) for tool in call.tools]
        choice = _tool_choice(call.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    # presence/frequency penalties, seed and response_format have no Messages API counterpart.
    body.update(call.other)
    return body


def _messages(messages: list[JSON]) -> tuple[str | list[JSON] | None, list[JSON]]:
    system: list[JSON] = []
    wire: list[JSON] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            system.extend(_blocks(content))
            continue
        if role == "tool":
            result: JSON = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or ""}
            if content:
                result["content"] = content if isinstance(content, str) else _blocks(content)
            # All results answering one assistant turn travel in one user message.
            last = wire[-1] if wire else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(result)
            else:
                wire.append({"role": "user", "content": [result]})
            continue
        if role == "assistant":
            blocks = _blocks(content)
            for tool_call in message.get("tool_calls") or ():
                function = tool_call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tool_call.get("id") or "",
                        "name": function.get("name") or "",
                        "input": _arguments(function.get("arguments")),
                    }
                )
            if not message.get("tool_calls") and isinstance(content, str):
                wire.append({"role": "assistant", "content": content})
            else:
                wire.append({"role": "assistant", "content": blocks})
            continue
        # user (and anything else): a follow-up to tool results joins their message, after them.
        last = wire[-1] if wire else None
        if last and last["role"] == "user" and isinstance(last["content"], list):
            last["content"].extend(_blocks(content))
        else:
            user = content if isinstance(content, str) else _blocks(content)
            wire.append({"role": "user", "content": user})
    if all(block.get("type") == "text" and set(block) == {"type", "text"} for block in system):
        text = "\n\n".join(block["text"] for block in system)
        return (text or None), wire
    return system, wire


def _blocks(content: Any) -> list[JSON]:
    """OpenAI content (a string or parts) as Anthropic content blocks."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            blocks.append({"type": "image", "source": _image_source(url)})
        else:
            blocks.append(part)  # already an Anthropic block (document, tool_result, ...): sent as given
    return blocks


def _image_source(url: str) -> JSON:
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _tool(tool: JSON) -> JSON:
    function = tool.get("function", tool)
    converted: JSON = {"name": function.get("name")}
    if function.get("description"):
        converted["description"] = function["description"]
    converted["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return converted


def _tool_choice(choice: str | JSON | None) -> JSON | None:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if name:
            return {"type": "tool", "name": name}
    return None


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except ValueError:
        return {"arguments": arguments}


# -- responses --------------------------------------------------------------------------------------------


def generation(index: int, message: JSON) -> Generation:
    text: list[str] = []
    tool_calls: list[JSON] = []
    for block in message.get("content") or ():
        if block.get("type") == "text":
            text.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": dumps(block.get("input") or {})},
                }
            )
    return Generation(
        index=index,
        raw_output="".join(text),
        finish_reason=normalise_finish_reason(message.get("stop_reason")),
        tool_calls=tool_calls or None,
    )


def usage(reported: Any) -> Usage | None:
    if not isinstance(reported, dict) or "output_tokens" not in reported:
        return None
    # Cached prompt tokens are still prompt tokens; Anthropic reports them apart from input_tokens.
    prompt = sum(
        int(reported.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt, int(reported.get("output_tokens") or 0))


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class StreamAssembly:
    """Folds a stream's events into one ``message`` object for ``provider_responses`` (blocks with their
    text and parsed tool input, the final stop reason and usage), plus how many events made it."""

    def __init__(self) -> None:
        self.events = 0
        self.message: JSON = {}
        self.blocks: dict[int, JSON] = {}
        self.partial_json: dict[int, str] = {}

    def add(self, event: JSON) -> None:
        self.events += 1
        kind = event.get("type")
        if kind == "message_start":
            self.message = dict(event.get("message") or {})
        elif kind == "content_block_start":
            self.blocks[int(event.get("index") or 0)] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            position = int(event.get("index") or 0)
            block = self.blocks.setdefault(position, {"type": "text", "text": ""})
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                block["text"] = (block.get("text") or "") + (delta.get("text") or "")
            elif delta.get("type") == "input_json_delta":
                self.partial_json[position] = self.partial_json.get(position, "") + (
                    delta.get("partial_json") or ""
                )
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = (block.get("thinking") or "") + (delta.get("thinking") or "")
        elif kind == "message_delta":
            self.message.update(event.get("delta") or {})
            merged = dict(self.message.get("usage") or {})
            merged.update(event.get("usage") or {})
            self.message["usage"] = merged

    def result(self) -> JSON:
        for position, raw in self.partial_json.items():
            self.blocks[position]["input"] = _arguments(raw)
        return {
            **self.message,
            "content": [self.blocks[i] for i in sorted(self.blocks)],
            "stream_events": self.events,
        }
