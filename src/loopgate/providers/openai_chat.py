"""Adapter for the OpenAI Chat Completions wire API, shared by every server that speaks it
(OpenAI itself, groq, vLLM, llama.cpp, Ollama, ...).

Many OpenAI-compatible servers ignore ``n`` and return one choice. When an upstream returns fewer choices
than asked, the missing samples come from further calls, and the upstream is remembered as single-choice so
later requests fan out ``n`` concurrent calls straight away instead of paying a second round trip.
"""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

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
from loopgate.providers.streams import add_usage, merge
from loopgate.providers.wire import HTTPAdapter, error_in_body

_MAX_TOP_UP_CALLS = 16


class OpenAIChatAdapter(HTTPAdapter):
    path = "/chat/completions"
    _single_choice = False  # set once the upstream is seen to ignore ``n``

    # -- request building -------------------------------------------------------------------------------

    def build_request(self, call: GenerationCall, *, n: int, stream: bool) -> JSON:
        body: JSON = {"model": call.model, "messages": [_wire_message(m) for m in call.messages]}
        body["stream"] = stream
        body["n"] = n
        optional = {
            "temperature": call.temperature,
            "top_p": call.top_p,
            "max_tokens": call.max_tokens if call.max_tokens and call.max_tokens > 0 else None,
            "stop": call.stop,
            "presence_penalty": call.presence_penalty,
            "frequency_penalty": call.frequency_penalty,
            "seed": call.seed,
            "user": call.user,
            "tools": call.tools,
            "tool_choice": call.tool_choice if call.tools else None,
            "response_format": call.response_format,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body.update(call.other)
        return body

    def _target(self, call: GenerationCall) -> tuple[str, dict[str, str]]:
        """The URL and headers of a call: the extension point for vendors with another URL scheme or auth."""
        return self._url, self._headers(call)

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key(call)}", "Content-Type": "application/json"}

    def _error_in_body(self, body: JSON) -> ProviderError | None:
        return error_in_body(self.display_name, body)

    # -- plain calls --------------------------------------------------------------------------------------

    async def generate(self, call: GenerationCall) -> ProviderResult:
        url, headers = self._target(call)
        if self._single_choice and call.n > 1:
            request = self.build_request(call, n=1, stream=False)
            posts = (self._upstream.post(url, request, headers) for _ in range(call.n))
            responses = list(await asyncio.gather(*posts))
        else:
            request = self.build_request(call, n=call.n, stream=False)
            responses = [await self._upstream.post(url, request, headers)]
            responses += await self._top_up(call, url, headers, _count_choices(responses))
        generations: list[Generation] = []
        usage: Usage | None = None
        for response in responses:
            for choice in response.get("choices") or ():
                generations.append(_generation(len(generations), choice))
            usage = add_usage(usage, _usage(response["usage"])) if response.get("usage") else usage
        if not generations:
            raise ProviderError(f"{self.display_name} returned no choices", origin=self.display_name)
        return ProviderResult(
            generations=generations[: call.n],
            request=request,
            responses=responses,
            usage=usage if all(response.get("usage") for response in responses) else None,
        )

    async def _top_up(self, call: GenerationCall, url: str, headers: dict[str, str], have: int) -> list[JSON]:
        extra: list[JSON] = []
        for _ in range(_MAX_TOP_UP_CALLS):
            # No choice at all is an empty answer, not an upstream that ignores n: asking again won't help.
            if not have or have >= call.n:
                break
            self._single_choice = True
            request = self.build_request(call, n=1, stream=False)
            batch = await asyncio.gather(
                *(self._upstream.post(url, request, headers) for _ in range(call.n - have))
            )
            extra.extend(batch)
            if not _count_choices(batch):
                break
            have += _count_choices(batch)
        return extra

    # -- streams ------------------------------------------------------------------------------------------

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        url, headers = self._target(call)
        request = self.build_request(call, n=1 if self._single_choice else call.n, stream=True)
        responses: list[Any] = []
        seen: set[int] = set()
        usage: Usage | None = None
        if self._single_choice and call.n > 1:
            sources = [self._stream_once(url, request, headers, responses, offset=i) for i in range(call.n)]
        else:
            sources = [self._stream_once(url, request, headers, responses, offset=0)]
        async for event in merge(sources):
            if isinstance(event, Usage):
                usage = add_usage(usage, event)
                continue
            seen.add(event.index)
            yield event
        if not seen:
            raise ProviderError(f"{self.display_name} returned no choices", origin=self.display_name)
        missing = [i for i in range(call.n) if i not in seen]
        if missing:
            self._single_choice = True
            single = self.build_request(call, n=1, stream=True)
            async for event in merge(
                [self._stream_once(url, single, headers, responses, offset=i) for i in missing]
            ):
                if isinstance(event, Usage):
                    usage = add_usage(usage, event)
                else:
                    yield event
        yield StreamEnd(request=request, responses=responses, usage=usage)

    async def _stream_once(
        self, url: str, body: JSON, headers: dict[str, str], responses: list[Any], *, offset: int
    ) -> AsyncGenerator[StreamDelta | Usage, None]:
        """One upstream stream; choice indexes are shifted by ``offset`` so parallel calls stay apart."""
        assembled = _StreamAssembly()
        try:
            async with aclosing(self._upstream.events(url, body, headers)) as chunks:
                async for chunk in chunks:
                    assembled.add(chunk)
                    if chunk.get("usage"):
                        yield _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        delta = _stream_delta(choice, offset)
                        if delta is not None:
                            yield delta
        finally:
            if assembled.chunks:
                responses.append(assembled.result())


class _StreamAssembly:
    """Folds a stream's chunks into one chat.completion-shaped object for ``provider_responses``, so a log
    keeps the upstream's ids, model and content without storing hundreds of chunk objects."""

    def __init__(self) -> None:
        self.chunks = 0
        self.head: JSON = {}
        self.choices: dict[int, JSON] = {}
        self.usage: Any = None

    def add(self, chunk: JSON) -> None:
        self.chunks += 1
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "model", "created", "system_fingerprint")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            slot = self.choices.setdefault(
                int(choice.get("index") or 0),
                {
                    "index": int(choice.get("index") or 0),
                    "message": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                },
            )
            delta = choice.get("delta") or {}
            if delta.get("content"):
                slot["message"]["content"] += delta["content"]
            for tool in delta.get("tool_calls") or ():
                calls = slot["message"].setdefault("tool_calls", [])
                position = int(tool.get("index") or 0)
                while len(calls) <= position:
                    calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if tool.get("id"):
                    calls[position]["id"] = tool["id"]
                function = tool.get("function") or {}
                calls[position]["function"]["name"] += function.get("name") or ""
                calls[position]["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]

    def result(self) -> JSON:
        return {
            **self.head,
            "object": "chat.completion",
            "choices": [self.choices[i] for i in sorted(self.choices)],
            "usage": self.usage,
            "stream_chunks": self.chunks,
        }


def _wire_message(message: JSON) -> JSON:
    # The deprecated single ``tool_call`` is Humanloop's, not OpenAI's; tool_calls carries the same data.
    return {k: v for k, v in message.items() if k != "tool_call" and v is not None}


def _usage(usage: JSON) -> Usage:
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _count_choices(responses: list[JSON]) -> int:
    return sum(len(r.get("choices") or ()) for r in responses)


def _generation(index: int, choice: JSON) -> Generation:
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):  # some compatible servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return Generation(
        index=index,
        raw_output=content or "",
        finish_reason=normalise_finish_reason(choice.get("finish_reason")),
        tool_calls=message.get("tool_calls") or None,
        logprobs=choice.get("logprobs"),
    )


def _stream_delta(choice: JSON, offset: int) -> StreamDelta | None:
    delta = choice.get("delta") or {}
    tool_calls = [
        ToolCallDelta(
            position=int(tool.get("index") or 0),
            id=tool.get("id"),
            name=(tool.get("function") or {}).get("name"),
            arguments=(tool.get("function") or {}).get("arguments") or "",
        )
        for tool in delta.get("tool_calls") or ()
    ] or None
    text = delta.get("content") or ""
    finish = normalise_finish_reason(choice.get("finish_reason"))
    if not text and tool_calls is None and finish is None:
        return None
    return StreamDelta(
        index=int(choice.get("index") or 0) + offset, text=text, tool_calls=tool_calls, finish_reason=finish
    )
