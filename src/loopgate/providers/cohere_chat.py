"""Adapter for Cohere's v2 Chat API (``POST /v2/chat``, plain and streamed).

v2 messages are close to the OpenAI shape (system/user/assistant/tool, ``tool_calls`` with a JSON-string
``arguments``, ``tool_call_id``); the differences handled here: sampling parameters are named ``p`` and
``stop_sequences``; ``tool_choice`` is ``REQUIRED`` / ``NONE`` or absent (auto), so forcing one function sends
only that tool with ``REQUIRED``; the answer's ``message.content`` is a list of text parts. v2 has no ``n``:
``num_samples`` > 1 runs that many calls concurrently. Stream events (message-start, content-delta,
tool-call-start/delta/end, message-end) become deltas, folded into one chat-shaped object for the log.
"""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from loopgate.errors import ProviderError, UpstreamStatusError
from loopgate.providers.base import (
    JSON,
    Generation,
    GenerationCall,
    ProviderResult,
    StreamDelta,
    StreamEnd,
    StreamEvent,
    ToolCallDelta,
    Usage,
    normalise_finish_reason,
)
from loopgate.providers.streams import merge, total_usage
from loopgate.providers.wire import HTTPAdapter, dumps, error_message


class CohereChatAdapter(HTTPAdapter):
    path = "/v2/chat"

    def build_request(self, call: GenerationCall, *, stream: bool) -> JSON:
        body: JSON = {"model": call.model, "messages": [_wire_message(m) for m in call.messages]}
        body["stream"] = stream
        tools, tool_choice = _tools(call.tools, call.tool_choice)
        stop = [call.stop] if isinstance(call.stop, str) else call.stop
        optional = {
            "tools": tools,
            "tool_choice": tool_choice,
            "temperature": call.temperature,
            "p": call.top_p,
            "max_tokens": call.max_tokens if call.max_tokens and call.max_tokens > 0 else None,
            "stop_sequences": stop or None,
            "seed": call.seed,
            "frequency_penalty": call.frequency_penalty or None,
            "presence_penalty": call.presence_penalty or None,
            "response_format": _response_format(call.response_format),
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body.update(call.other)
        return body

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key(call)}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    async def generate(self, call: GenerationCall) -> ProviderResult:
        headers = self._headers(call)
        request = self.build_request(call, stream=False)
        posts = (self._upstream.post(self._url, request, headers) for _ in range(max(call.n, 1)))
        responses = list(await asyncio.gather(*posts))
        generations = [_generation(index, response) for index, response in enumerate(responses)]
        usage = total_usage(_usage(response.get("usage")) for response in responses)
        return ProviderResult(generations=generations, request=request, responses=responses, usage=usage)

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        headers = {**self._headers(call), "Accept": "text/event-stream"}
        request = self.build_request(call, stream=True)
        assemblies = [_StreamAssembly(index) for index in range(max(call.n, 1))]
        sources = [self._events(request, headers, assembly) for assembly in assemblies]
        async for delta in merge(sources):
            yield delta
        usage = total_usage(_usage(assembly.usage) for assembly in assemblies)
        yield StreamEnd(request=request, responses=[a.result() for a in assemblies], usage=usage)

    async def _events(
        self, request: JSON, headers: dict[str, str], assembly: "_StreamAssembly"
    ) -> AsyncGenerator[StreamDelta, None]:
        async for event in self._upstream.events(self._url, request, headers):
            if event.get("type") is None and (event.get("error") or event.get("message")):
                message = error_message(event) or f"{self.display_name} reported an error"
                raise UpstreamStatusError(message, origin=self.display_name, status_code=502, body=event)
            delta = assembly.add(event)
            if delta is not None:
                yield delta
        if not assembly.ended:
            raise ProviderError(
                f"{self.display_name} ended the stream without message-end", origin=self.display_name
            )


# -- request translation ----------------------------------------------------------------------------------


def _wire_message(message: JSON) -> JSON:
    role = message.get("role")
    if role == "developer":
        role = "system"
    wire: JSON = {"role": role}
    content = message.get("content")
    if role == "tool":
        wire["tool_call_id"] = message.get("tool_call_id")
    if content is not None and content != "":
        wire["content"] = content
    elif role != "assistant":
        wire["content"] = ""
    if role == "assistant" and message.get("tool_calls"):
        wire["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {
                    "name": (call.get("function") or {}).get("name", ""),
                    "arguments": (call.get("function") or {}).get("arguments") or "{}",
                },
            }
            for call in message["tool_calls"]
        ]
    return wire


def _tools(tools: list[JSON] | None, choice: str | JSON | None) -> tuple[list[JSON] | None, str | None]:
    if not tools:
        return None, None
    wire: list[JSON] = [{"type": "function", "function": tool.get("function") or tool} for tool in tools]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return [tool for tool in wire if tool["function"].get("name") == name] or wire, "REQUIRED"
    return wire, {"required": "REQUIRED", "none": "NONE"}.get(choice or "auto")


def _response_format(response_format: JSON | None) -> JSON | None:
    if not response_format:
        return None
    wire: JSON = {"type": "json_object"}
    schema = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and schema:
        wire["json_schema"] = schema.get("schema", schema)
    return wire


# -- response translation ---------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "text"
    )


def _tool_call(call: JSON) -> JSON:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {
            "name": function.get("name", ""),
            "arguments": arguments if isinstance(arguments, str) else dumps(arguments or {}),
        },
    }


def _generation(index: int, response: JSON) -> Generation:
    message = response.get("message") or {}
    calls = [_tool_call(call) for call in message.get("tool_calls") or ()]
    return Generation(
        index=index,
        raw_output=_text(message.get("content")),
        finish_reason=normalise_finish_reason(response.get("finish_reason")),
        tool_calls=calls or None,
        logprobs=response.get("logprobs"),
    )


def _usage(usage: JSON | None) -> Usage | None:
    counts = (usage or {}).get("tokens") or (usage or {}).get("billed_units")
    if not counts or "input_tokens" not in counts:
        return None
    return Usage(int(counts["input_tokens"]), int(counts.get("output_tokens") or 0))


class _StreamAssembly:
    """One v2 stream (one sample): events in, deltas out, and the chat response it amounts to."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.chunks = 0
        self.ended = False
        self.id: str | None = None
        self.text: list[str] = []
        self.tool_plan = ""
        self.tool_calls: dict[int, JSON] = {}
        self.finish_reason: str | None = None
        self.usage: JSON | None = None

    def add(self, event: JSON) -> StreamDelta | None:
        self.chunks += 1
        kind = event.get("type")
        message = (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self.id = event.get("id")
        elif kind == "content-delta":
            text = (message.get("content") or {}).get("text") or ""
            if text:
                self.text.append(text)
                return StreamDelta(index=self.index, text=text)
        elif kind == "tool-plan-delta":
            self.tool_plan += message.get("tool_plan") or ""
        elif kind in ("tool-call-start", "tool-call-delta"):
            return self._tool_delta(int(event.get("index") or 0), message.get("tool_calls") or {})
        elif kind == "message-end":
            self.ended = True
            delta = event.get("delta") or {}
            self.finish_reason = delta.get("finish_reason")
            self.usage = delta.get("usage")
            return StreamDelta(index=self.index, finish_reason=normalise_finish_reason(self.finish_reason))
        return None

    def _tool_delta(self, position: int, call: JSON) -> StreamDelta:
        slot = self.tool_calls.setdefault(
            position, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        function = call.get("function") or {}
        if call.get("id"):
            slot["id"] = call["id"]
        slot["function"]["name"] += function.get("name") or ""
        slot["function"]["arguments"] += function.get("arguments") or ""
        tool = ToolCallDelta(position, call.get("id"), function.get("name"), function.get("arguments") or "")
        return StreamDelta(index=self.index, tool_calls=[tool])

    def result(self) -> JSON:
        message: JSON = {"role": "assistant", "content": [{"type": "text", "text": "".join(self.text)}]}
        if self.tool_plan:
            message["tool_plan"] = self.tool_plan
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[p] for p in sorted(self.tool_calls)]
        return {
            "id": self.id,
            "finish_reason": self.finish_reason,
            "message": message,
            "usage": self.usage,
            "stream_chunks": self.chunks,
        }
