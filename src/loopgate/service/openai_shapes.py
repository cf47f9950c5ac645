"""OpenAI's response objects, built from loopgate's samples: ``chat.completion``, the
``chat.completion.chunk`` events of a stream, and the error object.

They are built from the same ``Sample`` that becomes the log row (``service/records.py``), whatever the
provider, so the answer and the log cannot disagree. The completion id is the first log's id with
``chatcmpl-`` for ``data_``: a client holding the id can find the log.
"""

from typing import Any

import orjson

from loopgate import ids
from loopgate.errors import LoopgateError, ProviderError, UpstreamStatusError
from loopgate.providers.base import StreamDelta, ToolCallDelta, Usage
from loopgate.service.prepare import Prepared
from loopgate.service.records import Sample

_LOG_PREFIX = ids.LOG + "_"
_HOLE = "\x00loopgate-delta\x00"  # cannot occur in an id or a model name
_ENCODED_HOLE = orjson.dumps(_HOLE)
_DONE = b"data: [DONE]\n\n"
_ROLE = {"role": "assistant", "content": ""}


def completion_id(log_id: str) -> str:
    return "chatcmpl-" + log_id.removeprefix(_LOG_PREFIX)


def finish_reason(reason: str | None) -> str:
    """OpenAI's name for loopgate's normalised reason (v4 says ``tool_call``, OpenAI ``tool_calls``). A
    sample that ended without one (some upstreams never say) stopped on its own: ``stop``."""
    if reason is None:
        return "stop"
    return "tool_calls" if reason == "tool_call" else reason


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.generation_tokens,
        "total_tokens": usage.total_tokens,
    }


def _tool_calls(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    shaped = []
    for call in calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # OpenAI's arguments are a JSON string, whatever the provider
            arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
        shaped.append(
            {
                "id": call.get("id"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": arguments},
            }
        )
    return shaped


def _message(sample: Sample) -> dict[str, Any]:
    calls = _tool_calls(sample.tool_calls)
    # As OpenAI answers: content null when the model only called tools, else the text (even empty).
    content = sample.raw_output if sample.raw_output or not calls else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return message


class CompletionShape:
    """The plain answer: ``(chat.completion, log ids)``, for ``GenerationService.run``."""

    def __init__(self, model: str, created: int) -> None:
        self._model = model
        self._created = created

    def __call__(
        self,
        prepared: Prepared,
        samples: list[Sample],
        usage: Usage,
        provider_request: Any,
        provider_responses: list[Any],
    ) -> tuple[dict[str, Any], list[str]]:
        body = {
            "id": completion_id(samples[0].log_id),
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "choices": [
                {
                    "index": sample.index,
                    "message": _message(sample),
                    # An OpenAI-wire upstream's own logprobs when the client asked for them.
                    "logprobs": sample.logprobs,
                    "finish_reason": finish_reason(sample.finish_reason),
                }
                for sample in samples
            ],
            "usage": usage_body(usage),
            "system_fingerprint": None,
        }
        return body, [sample.log_id for sample in samples]


class ChunkEvents:
    """A stream as OpenAI sends it (a ``StreamShape``, see ``service/streaming.py``): per choice a first
    chunk with the role, then content and tool-call deltas; the chunks with ``finish_reason``, the usage
    chunk (when ``stream_options.include_usage``) and ``[DONE]`` are the finals, sent once the logs are
    committed."""

    def __init__(
        self, prepared: Prepared, log_ids: list[str], *, model: str, created: int, include_usage: bool
    ) -> None:
        self._head: dict[str, Any] = {
            "id": completion_id(log_ids[0]),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
        }
        # OpenAI puts "usage": null in every chunk when the client asked for usage, and nothing otherwise.
        self._tail: dict[str, Any] = {"usage": None} if include_usage else {}
        self._include_usage = include_usage
        self._started: set[int] = set()
        self._templates: dict[int, list[bytes]] = {}

    def delta(self, event: StreamDelta) -> bytes | None:
        parts = []
        if event.index not in self._started:
            self._started.add(event.index)
            parts.append(self._chunk(event.index, _ROLE))
        if event.text:
            parts.append(self._text(event.index, event.text))
        if event.tool_calls:
            calls = [_tool_delta(tool) for tool in event.tool_calls]
            parts.append(self._chunk(event.index, {"tool_calls": calls}))
        # finish_reason waits for the finals: it is the client's sign that the answer is complete.
        return b"".join(parts) or None

    def finals(self, samples: list[Sample], usage: Usage) -> list[bytes]:
        finals = []
        for sample in samples:
            role = b"" if sample.index in self._started else self._chunk(sample.index, _ROLE)
            finals.append(role + self._chunk(sample.index, {}, finish_reason(sample.finish_reason)))
        if self._include_usage:
            body = {**self._head, "choices": [], "usage": usage_body(usage)}
            finals.append(b"data: " + orjson.dumps(body) + b"\n\n")
        finals.append(_DONE)
        return finals

    def failure(self, error: LoopgateError) -> bytes:
        # The OpenAI SDKs raise an APIError for an event that carries "error".
        found = (
            provider_error(error)
            if isinstance(error, ProviderError)
            else error_object(error.message, error_type(error.status_code))
        )
        return b"data: " + orjson.dumps({"error": found}) + b"\n\n"

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self._head, "choices": [choice], **self._tail}) + b"\n\n"

    def _text(self, index: int, text: str) -> bytes:
        # Rendered once per choice around a placeholder; each delta splices its encoded text in (as v4's
        # events do, service/streaming.py).
        pieces = self._templates.get(index)
        if pieces is None:
            pieces = self._templates[index] = self._chunk(index, {"content": _HOLE}).split(_ENCODED_HOLE)
        return orjson.dumps(text).join(pieces)


def _tool_delta(tool: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's tool-call delta: id, type and name arrive with the call's first piece, then arguments."""
    delta: dict[str, Any] = {"index": tool.position}
    if tool.id:
        delta["id"] = tool.id
        delta["type"] = "function"
    function: dict[str, Any] = {"arguments": tool.arguments}
    if tool.name:
        function["name"] = tool.name
    delta["function"] = function
    return delta


# -- errors -------------------------------------------------------------------------------------------------


def error_object(message: str, type_: str, param: str | None = None, code: Any = None) -> dict[str, Any]:
    return {"message": message, "type": type_, "param": param, "code": code}


def error_type(status: int) -> str:
    """OpenAI's error type for a status. OpenAI itself answers most 4xx (401 and 404 included) with
    ``invalid_request_error`` and tells them apart by ``code``; the SDKs choose the exception by status."""
    if status == 429:
        return "rate_limit_error"
    if status == 403:
        return "permission_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def provider_error(error: ProviderError) -> dict[str, Any]:
    """A provider failure as OpenAI's error object. An upstream that answered in OpenAI's shape (OpenAI,
    groq, vLLM, ...) keeps its own type, param and code; the message is the upstream's, as v4 reports it."""
    found: dict[str, Any] = {}
    if isinstance(error, UpstreamStatusError) and isinstance(error.upstream_body, dict):
        upstream = error.upstream_body.get("error")
        if isinstance(upstream, dict):
            found = upstream
    type_, param, code = found.get("type"), found.get("param"), found.get("code")
    return error_object(
        error.message,
        type_ if isinstance(type_, str) else error_type(error.status_code),
        param if isinstance(param, str) else None,
        code if isinstance(code, str | int) else None,
    )
