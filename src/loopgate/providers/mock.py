"""The built-in ``mock`` provider (a member of the v4 provider enum): deterministic, no network.

It answers in the OpenAI chat shape so ``provider_request`` / ``provider_responses`` look like a real call:
- text: ``This is a mock response to: <last user text>``; samples after the first end in ``(sample N)``;
- ``response_format`` json_object: a JSON object echoing the text;
- tools: a call to the tool forced by ``tool_choice``, the first tool when it is ``required``, or with
  ``auto`` the first tool whose name appears in the last user message; arguments fill each required
  parameter with a placeholder of its JSON type;
- ``max_tokens`` truncates (finish_reason ``length``) and ``stop`` cuts the text;
- a last user message ``mock-error:<status>`` fails with that upstream status, for error-path demos;
- ``other.mock_delay_ms`` sleeps that long before each streamed chunk (for slow-stream demos).
"""

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from loopgate import tokens
from loopgate.config import Settings
from loopgate.errors import UpstreamStatusError
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
)
from loopgate.providers.http import UpstreamHTTP

_PLACEHOLDERS: dict[str, Any] = {
    "string": "mock",
    "integer": 0,
    "number": 0,
    "boolean": True,
    "array": [],
    "object": {},
}


class MockProvider:
    name = "mock"
    display_name = "Mock"
    key_field: str | None = None

    async def generate(self, call: GenerationCall) -> ProviderResult:
        generations = [self._generation(call, index) for index in range(call.n)]
        return ProviderResult(
            generations=generations,
            request=_request_body(call, stream=False),
            responses=[_response_body(call, generations)],
            usage=_usage(call, generations),
        )

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        delay = float(call.other.get("mock_delay_ms", 0)) / 1000
        generations = [self._generation(call, index) for index in range(call.n)]
        pieces = [_pieces(g.raw_output) for g in generations]
        for step in range(max(len(p) for p in pieces) + 1):
            for generation, parts in zip(generations, pieces, strict=True):
                if step < len(parts):
                    if delay:
                        await asyncio.sleep(delay)
                    yield StreamDelta(index=generation.index, text=parts[step])
                elif step == len(parts):
                    yield StreamDelta(
                        index=generation.index,
                        tool_calls=[
                            ToolCallDelta(
                                position=i,
                                id=t["id"],
                                name=t["function"]["name"],
                                arguments=t["function"]["arguments"],
                            )
                            for i, t in enumerate(generation.tool_calls or ())
                        ]
                        or None,
                        finish_reason=generation.finish_reason,
                    )
        yield StreamEnd(
            request=_request_body(call, stream=True),
            responses=[_response_body(call, generations)],
            usage=_usage(call, generations),
        )

    def _generation(self, call: GenerationCall, index: int) -> Generation:
        text = _last_user_text(call.messages)
        if text.startswith("mock-error:"):
            status = int(text.split(":", 1)[1].strip() or 500)
            raise UpstreamStatusError(
                f"Mock provider error {status} (requested by the message)",
                origin=self.display_name,
                status_code=status,
                body={"error": {"message": "requested failure", "code": status}},
                headers={"retry-after": "1"} if status == 429 else {},
            )
        tool_call = _tool_call(call, text, index)
        if tool_call is not None:
            return Generation(index=index, raw_output="", finish_reason="tool_call", tool_calls=[tool_call])
        output = f"This is a mock response to: {text}"
        if index:
            output += f" (sample {index + 1})"
        if call.response_format and call.response_format.get("type") in ("json_object", "json_schema"):
            output = json.dumps({"response": output, "sample": index})
        finish = "stop"
        for stop in [call.stop] if isinstance(call.stop, str) else call.stop or []:
            if stop and stop in output:
                output = output[: output.index(stop)]
        if call.max_tokens and call.max_tokens > 0:
            words = output.split(" ")
            if len(words) > call.max_tokens:
                output, finish = " ".join(words[: call.max_tokens]), "length"
        return Generation(index=index, raw_output=output, finish_reason=finish)


def build(settings: Settings, http: UpstreamHTTP) -> MockProvider:
    return MockProvider()


def _last_user_text(messages: list[JSON]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("text"))
            return str(content or "")
    return ""


def _tool_call(call: GenerationCall, text: str, index: int) -> JSON | None:
    tools = [t["function"] for t in call.tools or () if t.get("function")]
    choice = call.tool_choice
    if not tools or choice == "none":
        return None
    chosen: JSON | None = None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        chosen = next((t for t in tools if t.get("name") == wanted), None)
    elif choice == "required":
        chosen = tools[0]
    else:
        chosen = next((t for t in tools if t.get("name") and t["name"] in text), None)
    if chosen is None:
        return None
    schema = chosen.get("parameters") or {}
    properties = schema.get("properties") or {}
    arguments = {
        name: _PLACEHOLDERS.get((properties.get(name) or {}).get("type", "string"), "mock")
        for name in schema.get("required") or ()
    }
    return {
        "id": f"call_mock{index}{chosen['name']}"[:40],
        "type": "function",
        "function": {"name": chosen["name"], "arguments": json.dumps(arguments)},
    }


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)] if text else []


def _request_body(call: GenerationCall, *, stream: bool) -> JSON:
    body: JSON = {"model": call.model, "messages": call.messages, "stream": stream, "n": call.n}
    for key in (
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "user",
        "tools",
        "tool_choice",
        "response_format",
    ):
        value = getattr(call, key)
        if value is not None:
            body[key] = value
    return body


def _response_body(call: GenerationCall, generations: list[Generation]) -> JSON:
    usage = _usage(call, generations)
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "model": call.model,
        "choices": [
            {
                "index": g.index,
                "message": {"role": "assistant", "content": g.raw_output or None, "tool_calls": g.tool_calls},
                "finish_reason": "tool_calls" if g.finish_reason == "tool_call" else g.finish_reason,
            }
            for g in generations
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.generation_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


def _usage(call: GenerationCall, generations: list[Generation]) -> Usage:
    generated = 0
    for g in generations:
        generated += tokens.count_text(g.raw_output)
        for t in g.tool_calls or ():
            generated += tokens.count_text(t["function"]["name"] + " " + t["function"]["arguments"])
    return Usage(tokens.count_messages(call.messages), generated)
