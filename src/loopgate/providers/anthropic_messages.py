"""Adapter for Anthropic's Messages API (``POST {base}/v1/messages``); the shape translation is in
``anthropic_wire.py``.

The API has no ``n``: ``num_samples > 1`` is that many concurrent calls of the same body, and every call's
raw answer is kept in ``provider_responses``. Streams are Anthropic's typed SSE events; each stream is
folded into one message object for the log.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
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
from loopgate.providers import anthropic_wire as wire
from loopgate.providers.base import (
    JSON,
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
from loopgate.providers.openai_chat import _merge as merge_streams
from loopgate.providers.retry import NO_RETRY, RetryPolicy, send

API_VERSION = "2023-06-01"
_KEPT_HEADERS = ("retry-after", "request-id", "x-request-id")


class AnthropicMessagesAdapter:
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
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._default_api_key = default_api_key
        self._http = http
        self._retry = retry

    def build_request(self, call: GenerationCall, *, stream: bool) -> JSON:
        return wire.build_request(call, stream=stream)

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        key = call.api_key or self._default_api_key
        if not key:
            raise ProviderKeyMissing(
                f"No API key for provider '{self.name}': pass provider_api_keys."
                f"{self.key_field or self.name} in the request, or set {self._key_variable} on the server.",
                origin=self.display_name,
            )
        return {"x-api-key": key, "anthropic-version": API_VERSION, "Content-Type": "application/json"}

    # -- plain calls --------------------------------------------------------------------------------------

    async def generate(self, call: GenerationCall) -> ProviderResult:
        headers = self._headers(call)
        request = self.build_request(call, stream=False)
        data = orjson.dumps(request)
        responses = list(await asyncio.gather(*(self._post(data, headers) for _ in range(max(1, call.n)))))
        generations = [wire.generation(index, message) for index, message in enumerate(responses)]
        usages = [wire.usage(message.get("usage")) for message in responses]
        total: Usage | None = None
        for usage in usages:
            total = wire.add_usage(total, usage) if usage is not None else total
        return ProviderResult(
            generations=generations,
            request=request,
            responses=responses,
            usage=total if all(usage is not None for usage in usages) else None,
        )

    async def _post(self, data: bytes, headers: dict[str, str]) -> JSON:
        try:
            async with await self._send(data, headers) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise self._timeout() from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        return self._parse(raw)

    async def _send(self, data: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        return await send(
            self._http,
            self._url,
            data,
            headers,
            policy=self._retry,
            origin=self.display_name,
            status_error=self._status_error,
        )

    def _parse(self, raw: bytes) -> JSON:
        origin = self.display_name
        try:
            parsed = orjson.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamConnectionError(f"{origin} sent a body that is not a JSON object", origin=origin)
        if parsed.get("type") == "error":
            raise self._error_event(parsed)
        return parsed

    def _status_error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamStatusError:
        body: Any
        try:
            body = orjson.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        message = wire.error_message(body) or f"{self.display_name} returned HTTP {status}"
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
        return UpstreamStatusError(
            message, origin=self.display_name, status_code=status, body=body, headers=kept
        )

    def _error_event(self, body: JSON) -> UpstreamStatusError:
        """An error inside a 200 (a stream's ``error`` event): its type says which status it stands for."""
        error = body.get("error")
        kind = str(error.get("type")) if isinstance(error, dict) else ""
        status = wire.ERROR_STATUS.get(kind, 502)
        message = wire.error_message(body) or f"{self.display_name} reported an error"
        return UpstreamStatusError(message, origin=self.display_name, status_code=status, body=body)

    def _timeout(self) -> ProviderError:
        return UpstreamTimeout(f"{self.display_name} did not answer in time", origin=self.display_name)

    def _unreachable(self, exc: Exception) -> ProviderError:
        return UpstreamConnectionError(
            f"Could not reach {self.display_name} at {self._url}: {exc}", origin=self.display_name
        )

    # -- streams ------------------------------------------------------------------------------------------

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        headers = self._headers(call)
        request = self.build_request(call, stream=True)
        data = orjson.dumps(request)
        responses: list[Any] = []
        sources = [self._stream_once(data, headers, responses, index=i) for i in range(max(1, call.n))]
        usage: Usage | None = None
        seen = False
        async for event in merge_streams(sources):
            if isinstance(event, Usage):
                usage = wire.add_usage(usage, event)
                continue
            seen = True
            yield event
        if not seen:
            raise ProviderError(f"{self.display_name} returned no content", origin=self.display_name)
        yield StreamEnd(request=request, responses=responses, usage=usage)

    async def _stream_once(
        self, data: bytes, headers: dict[str, str], responses: list[Any], *, index: int
    ) -> AsyncIterator[StreamDelta | Usage]:
        assembled = wire.StreamAssembly()
        tool_positions: dict[int, int] = {}  # content block index -> position among the tool calls
        try:
            async with await self._send(data, headers) as response:
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue  # ``event:`` lines repeat the data's own ``type``; blank lines end events
                    event = self._parse(line[5:].strip())
                    assembled.add(event)
                    for item in _translate(event, index, tool_positions):
                        yield item
                    if event.get("type") == "message_stop":
                        break
        except TimeoutError as exc:
            raise self._timeout() from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(exc) from exc
        finally:
            if assembled.events:
                responses.append(assembled.result())
        reported = wire.usage(assembled.message.get("usage"))
        if reported is not None:
            yield reported


def _translate(event: JSON, index: int, tool_positions: dict[int, int]) -> list[StreamDelta]:
    kind = event.get("type")
    block_index = int(event.get("index") or 0)
    if kind == "content_block_start":
        block = event.get("content_block") or {}
        if block.get("type") == "tool_use":
            position = tool_positions.setdefault(block_index, len(tool_positions))
            # Some servers put the whole input in the start block instead of streaming it.
            arguments = wire.dumps(block["input"]) if block.get("input") else ""
            start = ToolCallDelta(position, id=block.get("id"), name=block.get("name"), arguments=arguments)
            return [StreamDelta(index=index, tool_calls=[start])]
        if block.get("type") == "text" and block.get("text"):
            return [StreamDelta(index=index, text=block["text"])]
    elif kind == "content_block_delta":
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [StreamDelta(index=index, text=delta["text"])]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            position = tool_positions.setdefault(block_index, len(tool_positions))
            piece = ToolCallDelta(position, arguments=delta["partial_json"])
            return [StreamDelta(index=index, tool_calls=[piece])]
    elif kind == "message_delta":
        finish = normalise_finish_reason((event.get("delta") or {}).get("stop_reason"))
        if finish is not None:
            return [StreamDelta(index=index, finish_reason=finish)]
    return []
