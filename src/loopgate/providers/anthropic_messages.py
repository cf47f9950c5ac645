"""Adapter for Anthropic's Messages API (``POST {base}/v1/messages``); the shape translation is in
``anthropic_wire.py``.

The API has no ``n``: ``num_samples > 1`` is that many concurrent calls of the same body, and every call's
raw answer is kept in ``provider_responses``. Streams are Anthropic's typed SSE events; each stream is
folded into one message object for the log.
"""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from loopgate.errors import ProviderError, UpstreamStatusError
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
from loopgate.providers.streams import add_usage, merge, total_usage
from loopgate.providers.wire import HTTPAdapter, error_message

API_VERSION = "2023-06-01"


class AnthropicMessagesAdapter(HTTPAdapter):
    path = "/v1/messages"

    def build_request(self, call: GenerationCall, *, stream: bool) -> JSON:
        return wire.build_request(call, stream=stream)

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        return {
            "x-api-key": self._api_key(call),
            "anthropic-version": API_VERSION,
            "Content-Type": "application/json",
        }

    # -- plain calls --------------------------------------------------------------------------------------

    async def generate(self, call: GenerationCall) -> ProviderResult:
        headers = self._headers(call)
        request = self.build_request(call, stream=False)
        posts = (self._upstream.post(self._url, request, headers) for _ in range(max(1, call.n)))
        responses = list(await asyncio.gather(*posts))
        return ProviderResult(
            generations=[wire.generation(index, message) for index, message in enumerate(responses)],
            request=request,
            responses=responses,
            usage=total_usage(wire.usage(message.get("usage")) for message in responses),
        )

    def _error_in_body(self, body: JSON) -> UpstreamStatusError | None:
        """An error inside a 200 (a stream's ``error`` event): its type says which status it stands for."""
        if body.get("type") != "error":
            return None
        error = body.get("error")
        kind = str(error.get("type")) if isinstance(error, dict) else ""
        status = wire.ERROR_STATUS.get(kind, 502)
        message = error_message(body) or f"{self.display_name} reported an error"
        return UpstreamStatusError(message, origin=self.display_name, status_code=status, body=body)

    # -- streams ------------------------------------------------------------------------------------------

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        headers = self._headers(call)
        request = self.build_request(call, stream=True)
        responses: list[Any] = []
        sources = [self._stream_once(request, headers, responses, index=i) for i in range(max(1, call.n))]
        usage: Usage | None = None
        seen = False
        async for event in merge(sources):
            if isinstance(event, Usage):
                usage = add_usage(usage, event)
                continue
            seen = True
            yield event
        if not seen:
            raise ProviderError(f"{self.display_name} returned no content", origin=self.display_name)
        yield StreamEnd(request=request, responses=responses, usage=usage)

    async def _stream_once(
        self, request: JSON, headers: dict[str, str], responses: list[Any], *, index: int
    ) -> AsyncGenerator[StreamDelta | Usage, None]:
        assembled = wire.StreamAssembly()
        tool_positions: dict[int, int] = {}  # content block index -> position among the tool calls
        try:
            # ``event:`` lines repeat the data's own ``type``, so the ``data:`` payloads are all it takes.
            async with aclosing(self._upstream.events(self._url, request, headers)) as events:
                async for event in events:
                    assembled.add(event)
                    for item in _translate(event, index, tool_positions):
                        yield item
                    if event.get("type") == "message_stop":
                        break
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
