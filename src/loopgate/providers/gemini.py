"""Adapter for the Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``).

Translation from the OpenAI chat shape: assistant -> ``model``; system messages -> ``systemInstruction``;
assistant ``tool_calls`` -> ``functionCall`` parts and tool messages -> ``functionResponse`` parts (one user
turn per run of tool messages, named after the call they answer); image data URLs -> ``inlineData``; tools
-> ``functionDeclarations``; tool_choice -> ``toolConfig.functionCallingConfig``; sampling parameters and
JSON mode -> ``generationConfig``. Back: each candidate is a generation (text parts joined, thought parts
left out, ``functionCall`` parts as OpenAI-shape tool calls with an id made here when Gemini sends none).
"""

import mimetypes
import uuid
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote

from loopgate.errors import ProviderError
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
from loopgate.providers.wire import HTTPAdapter, dumps, error_in_body, tool_arguments

_TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


class GeminiAdapter(HTTPAdapter):
    """``key_field`` is None: v4's ProviderApiKeys has no google member."""

    path = "/v1beta/models/"

    def build_request(self, call: GenerationCall) -> JSON:
        system, contents = _contents(call.messages)
        body: JSON = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if call.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in call.tools]}]
            if call.tool_choice is not None:
                body["toolConfig"] = {"functionCallingConfig": _calling_config(call.tool_choice)}
        config = _generation_config(call)
        if config:
            body["generationConfig"] = config
        body.update(call.other)
        return body

    def _model_url(self, model: str, *, stream: bool) -> str:
        model = quote(model.removeprefix("models/"), safe="-._~")
        return self._url + model + (":streamGenerateContent?alt=sse" if stream else ":generateContent")

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key(call), "Content-Type": "application/json"}

    async def generate(self, call: GenerationCall) -> ProviderResult:
        headers = self._headers(call)
        request = self.build_request(call)
        response = await self._upstream.post(self._model_url(call.model, stream=False), request, headers)
        candidates = response.get("candidates") or []
        if not candidates:
            raise self._empty(response)
        generations = [
            _generation(position, candidate) for position, candidate in enumerate(candidates[: call.n])
        ]
        return ProviderResult(
            generations=generations,
            request=request,
            responses=[response],
            usage=_usage(response.get("usageMetadata")),
        )

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        headers = self._headers(call)
        request = self.build_request(call)
        assembly = _StreamAssembly()
        url = self._model_url(call.model, stream=True)
        async for chunk in self._upstream.events(url, request, headers):
            error = error_in_body(self.display_name, chunk)
            if error is not None:
                raise error
            for delta in assembly.add(chunk):
                yield delta
        if not assembly.candidates:
            raise self._empty(assembly.result())
        yield StreamEnd(request=request, responses=[assembly.result()], usage=_usage(assembly.usage_metadata))

    def _empty(self, response: JSON) -> ProviderError:
        blocked = (response.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            return ProviderError(
                f"{self.display_name} blocked the prompt ({blocked})",
                origin=self.display_name,
                status_code=400,
            )
        return ProviderError(f"{self.display_name} returned no candidates", origin=self.display_name)


# -- request translation ----------------------------------------------------------------------------------


def _contents(messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    system: list[JSON] = []
    contents: list[JSON] = []
    call_names: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
        elif role == "tool":
            part = {"functionResponse": _function_response(message, call_names)}
            if contents and contents[-1].get("_tool_turn"):
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part], "_tool_turn": True})
        elif role == "assistant":
            parts = _parts(message.get("content"))
            for tool_call in message.get("tool_calls") or ():
                function = tool_call.get("function") or {}
                call_names[str(tool_call.get("id"))] = function.get("name", "")
                call = {"name": function.get("name", ""), "args": tool_arguments(function.get("arguments"))}
                parts.append({"functionCall": call})
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            contents.append({"role": "user", "parts": _parts(message.get("content")) or [{"text": ""}]})
    for content in contents:
        content.pop("_tool_turn", None)
    return system, contents


def _parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[JSON] = []
    for item in content or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "text":
            parts.append({"text": item.get("text") or ""})
        elif item.get("type") == "image_url":
            parts.append(_image_part(str((item.get("image_url") or {}).get("url") or "")))
    return parts


def _image_part(url: str) -> JSON:
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return {"inlineData": {"mimeType": head or "image/png", "data": data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _function_response(message: JSON, call_names: dict[str, str]) -> JSON:
    name = call_names.get(str(message.get("tool_call_id"))) or message.get("name") or ""
    content = message.get("content")
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in _parts(content))
    parsed = tool_arguments(text) if text.lstrip().startswith("{") else None
    response = parsed if parsed is not None and "arguments" not in parsed else {"content": text}
    return {"name": name, "response": response}


def _declaration(tool: JSON) -> JSON:
    function = tool.get("function") or tool
    declaration: JSON = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    # Gemini rejects an OBJECT schema without properties: a function without parameters declares none.
    if parameters and (parameters.get("properties") or parameters.get("type") != "object"):
        declaration["parameters"] = parameters
    return declaration


def _calling_config(choice: str | JSON) -> JSON:
    if isinstance(choice, str):
        return {"mode": _TOOL_MODES.get(choice, "AUTO")}
    name = (choice.get("function") or {}).get("name")
    return {"mode": "ANY", "allowedFunctionNames": [name]} if name else {"mode": "AUTO"}


def _generation_config(call: GenerationCall) -> JSON:
    stop = [call.stop] if isinstance(call.stop, str) else call.stop
    config: JSON = {
        "temperature": call.temperature,
        "topP": call.top_p,
        "maxOutputTokens": call.max_tokens if call.max_tokens and call.max_tokens > 0 else None,
        "stopSequences": stop or None,
        "candidateCount": call.n if call.n > 1 else None,
        "seed": call.seed,
        # Some Gemini models refuse penalties outright, so a zero (v4's default) is not sent.
        "presencePenalty": call.presence_penalty or None,
        "frequencyPenalty": call.frequency_penalty or None,
    }
    response_format = call.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = response_format.get("json_schema") or {}
        if schema:
            config["responseJsonSchema"] = schema.get("schema", schema)
    return {key: value for key, value in config.items() if value is not None}


# -- response translation ---------------------------------------------------------------------------------


def _tool_call(function_call: JSON) -> JSON:
    return {
        "id": function_call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": function_call.get("name", ""),
            "arguments": dumps(function_call.get("args") or {}),
        },
    }


def _finish(reason: str | None, has_calls: bool) -> str | None:
    if has_calls and reason in ("STOP", None):
        return "tool_call"
    return normalise_finish_reason(reason)


def _generation(position: int, candidate: JSON) -> Generation:
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(part["text"] for part in parts if "text" in part and not part.get("thought"))
    calls = [_tool_call(part["functionCall"]) for part in parts if "functionCall" in part]
    return Generation(
        index=position,
        raw_output=text,
        finish_reason=_finish(candidate.get("finishReason"), bool(calls)),
        tool_calls=calls or None,
        logprobs=candidate.get("logprobsResult"),
    )


def _usage(metadata: JSON | None) -> Usage | None:
    if not metadata or "promptTokenCount" not in metadata:
        return None
    generated = int(metadata.get("candidatesTokenCount") or 0) + int(metadata.get("thoughtsTokenCount") or 0)
    return Usage(int(metadata["promptTokenCount"]), generated)


class _StreamAssembly:
    """Turns stream chunks into deltas and folds them into one GenerateContentResponse-shaped object for
    ``provider_responses`` (text parts joined, function calls kept, the last usage)."""

    def __init__(self) -> None:
        self.chunks = 0
        self.head: JSON = {}
        self.candidates: dict[int, JSON] = {}
        self.calls: dict[int, int] = {}
        self.usage_metadata: JSON | None = None

    def add(self, chunk: JSON) -> list[StreamDelta]:
        self.chunks += 1
        for key in ("responseId", "modelVersion", "promptFeedback"):
            if key in chunk:
                self.head[key] = chunk[key]
        if chunk.get("usageMetadata"):
            self.usage_metadata = chunk["usageMetadata"]
        deltas = []
        for position, candidate in enumerate(chunk.get("candidates") or ()):
            delta = self._candidate(int(candidate.get("index", position)), candidate)
            if delta.text or delta.tool_calls or delta.finish_reason:
                deltas.append(delta)
        return deltas

    def _candidate(self, index: int, candidate: JSON) -> StreamDelta:
        slot = self.candidates.setdefault(index, {"index": index, "content": {"role": "model", "parts": []}})
        parts: list[JSON] = slot["content"]["parts"]
        text: list[str] = []
        tool_calls: list[ToolCallDelta] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                call = _tool_call(part["functionCall"])
                position = self.calls.get(index, 0)
                self.calls[index] = position + 1
                tool_calls.append(
                    ToolCallDelta(
                        position, call["id"], call["function"]["name"], call["function"]["arguments"]
                    )
                )
                parts.append(dict(part))
                continue
            if "text" in part and not part.get("thought"):
                text.append(part["text"])
            previous = parts[-1] if parts else None
            if (
                previous is not None
                and "text" in part
                and "text" in previous
                and (bool(previous.get("thought")) == bool(part.get("thought")))
            ):
                previous["text"] += part["text"]
            else:
                parts.append(dict(part))
        for key in ("finishReason", "safetyRatings", "citationMetadata"):
            if key in candidate:
                slot[key] = candidate[key]
        reason = candidate.get("finishReason")
        return StreamDelta(
            index=index,
            text="".join(text),
            tool_calls=tool_calls or None,
            finish_reason=_finish(reason, bool(self.calls.get(index))) if reason else None,
        )

    def result(self) -> JSON:
        return {
            "candidates": [self.candidates[i] for i in sorted(self.candidates)],
            "usageMetadata": self.usage_metadata,
            **self.head,
            "stream_chunks": self.chunks,
        }
