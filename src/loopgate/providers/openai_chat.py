"""Adapter for the OpenAI Chat Completions wire API, shared by every server that speaks it
(OpenAI itself, groq, vLLM, llama.cpp, Ollama, ...).

Many OpenAI-compatible servers ignore ``n`` and return one choice. When an upstream returns fewer choices
than asked, the missing samples come from further calls, and the upstream is remembered as single-choice so
later requests fan out ``n`` concurrent calls straight away instead of paying a second round trip.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import orjson

from loopgate.errors import (
    ProviderError,
    ProviderKeyMissing,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeout,
)
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
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.retry import NO_RETRY, RetryPolicy, send

_MAX_TOP_UP_CALLS = 16


class OpenAIChatAdapter:
    def __init__(
        self,
        *,
        name: str,
        display_name: str,
        key_field: str | None,
        key_variable: str,
        base_url: str,
        default_api_key: str | None,
        http: UpstreamHTTP,
        retry: RetryPolicy = NO_RETRY,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.key_field = key_field
        self._key_variable = key_variable
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._default_api_key = default_api_key
        self._http = http
        self._retry = retry
        self._single_choice = False

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

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        key = call.api_key or self._default_api_key
        if not key:
            raise ProviderKeyMissing(
                f"No API key for provider '{self.name}': pass provider_api_keys."
                f"{self.key_field or self.name} in the request, or set {self._key_variable} on the server.",
                origin=self.display_name,
            )
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    # -- plain calls --------------------------------------------------------------------------------------

    async def generate(self, call: GenerationCall) -> ProviderResult:
        headers = self._headers(call)
        if self._single_choice and call.n > 1:
            request = self.build_request(call, n=1, stream=False)
            responses = list(await asyncio.gather(*(self._post(request, headers) for _ in range(call.n))))
        else:
            request = self.build_request(call, n=call.n, stream=False)
            responses = [await self._post(request, headers)]
            responses += await self._top_up(call, headers, _count_choices(responses))
        generations: list[Generation] = []
        usage: Usage | None = None
        for response in responses:
            for choice in response.get("choices") or ():
                generations.append(_generation(len(generations), choice))
            usage = _add_usage(usage, _usage(response["usage"])) if response.get("usage") else usage
        if not generations:
            raise ProviderError(f"{self.display_name} returned no choices", origin=self.display_name)
        return ProviderResult(
            generations=generations[: call.n],
            request=request,
            responses=responses,
            usage=usage if all(response.get("usage") for response in responses) else None,
        )

    async def _top_up(self, call: GenerationCall, headers: dict[str, str], have: int) -> list[JSON]:
        extra: list[JSON] = []
        for _ in range(_MAX_TOP_UP_CALLS):
            # No choice at all is an empty answer, not an upstream that ignores n: asking again won't help.
            if not have or have >= call.n:
                break
            self._single_choice = True
            request = self.build_request(call, n=1, stream=False)
            batch = await asyncio.gather(*(self._post(request, headers) for _ in range(call.n - have)))
            extra.extend(batch)
            if not _count_choices(batch):
                break
            have += _count_choices(batch)
        return extra

    async def _post(self, body: JSON, headers: dict[str, str]) -> JSON:
        try:
            async with await self._send(body, headers) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{self.display_name} did not answer in time", origin=self.display_name
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"Could not reach {self.display_name} at {self._url}: {exc}", origin=self.display_name
            ) from exc
        return self._parse(raw)  # an error in a 200 body is not retried: asking again gets the same

    async def _send(self, body: JSON, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """The upstream's answer once its status is a success, after any retries the policy allows."""
        return await send(
            self._http,
            self._url,
            orjson.dumps(body),
            headers,
            policy=self._retry,
            origin=self.display_name,
            status_error=self._status_error,
        )

    def _parse(self, raw: bytes) -> JSON:
        """A 200 body or stream event. Some servers report failures in a 200 (OpenAI and vLLM mid-stream,
        OpenRouter in plain bodies) as ``{"error": ...}``; those are errors, not empty answers."""
        origin = self.display_name
        try:
            parsed = orjson.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamConnectionError(f"{origin} sent a body that is not a JSON object", origin=origin)
        if parsed.get("error"):
            message = _error_message(parsed) or f"{origin} reported an error"
            raise UpstreamStatusError(message, origin=origin, status_code=502, body=parsed)
        return parsed

    def _status_error(self, status: int, raw: bytes, headers: Any) -> UpstreamStatusError:
        body: Any
        try:
            body = orjson.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        message = _error_message(body) or f"{self.display_name} returned HTTP {status}"
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in ("retry-after", "x-request-id")}
        return UpstreamStatusError(
            message, origin=self.display_name, status_code=status, body=body, headers=kept
        )

    # -- streams ------------------------------------------------------------------------------------------

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        headers = self._headers(call)
        request = self.build_request(call, n=1 if self._single_choice else call.n, stream=True)
        responses: list[Any] = []
        seen: set[int] = set()
        usage: Usage | None = None
        if self._single_choice and call.n > 1:
            sources = [self._stream_once(request, headers, responses, offset=i) for i in range(call.n)]
        else:
            sources = [self._stream_once(request, headers, responses, offset=0)]
        async for event in _merge(sources):
            if isinstance(event, Usage):
                usage = _add_usage(usage, event)
                continue
            seen.add(event.index)
            yield event
        if not seen:
            raise ProviderError(f"{self.display_name} returned no choices", origin=self.display_name)
        missing = [i for i in range(call.n) if i not in seen]
        if missing:
            self._single_choice = True
            single = self.build_request(call, n=1, stream=True)
            async for event in _merge(
                [self._stream_once(single, headers, responses, offset=i) for i in missing]
            ):
                if isinstance(event, Usage):
                    usage = _add_usage(usage, event)
                else:
                    yield event
        yield StreamEnd(request=request, responses=responses, usage=usage)

    async def _stream_once(
        self, body: JSON, headers: dict[str, str], responses: list[Any], *, offset: int
    ) -> AsyncIterator[StreamDelta | Usage]:
        """One upstream stream; choice indexes are shifted by ``offset`` so parallel calls stay apart."""
        assembled = _StreamAssembly()
        try:
            async with await self._send(body, headers) as response:
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        break
                    chunk = self._parse(payload)
                    assembled.add(chunk)
                    if chunk.get("usage"):
                        yield _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        delta = _stream_delta(choice, offset)
                        if delta is not None:
                            yield delta
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{self.display_name} did not answer in time", origin=self.display_name
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"Could not reach {self.display_name} at {self._url}: {exc}", origin=self.display_name
            ) from exc
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


async def _merge(sources: list[AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """Interleave several async iterators as their items arrive; the first failure propagates."""
    if len(sources) == 1:
        async for item in sources[0]:
            yield item
        return
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    done = object()

    async def pump(source: AsyncIterator[Any]) -> None:
        try:
            async for item in source:
                await queue.put((0, item))
        except Exception as exc:
            await queue.put((1, exc))
        finally:
            await queue.put((0, done))

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    try:
        remaining = len(tasks)
        while remaining:
            failed, item = await queue.get()
            if failed:
                raise item
            if item is done:
                remaining -= 1
                continue
            yield item
    finally:
        for task in tasks:
            task.cancel()


def _wire_message(message: JSON) -> JSON:
    # The deprecated single ``tool_call`` is Humanloop's, not OpenAI's; tool_calls carries the same data.
    return {k: v for k, v in message.items() if k != "tool_call" and v is not None}


def _usage(usage: JSON) -> Usage:
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _add_usage(total: Usage | None, more: Usage) -> Usage:
    # The prompt is billed once per call; each call's completions add up.
    prompt, generated = (total.prompt_tokens, total.generation_tokens) if total else (0, 0)
    return Usage(max(prompt, more.prompt_tokens), generated + more.generation_tokens)


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


def _error_message(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return None
