"""Adapter for Amazon Bedrock's Converse API (``POST /model/{modelId}/converse`` and ``/converse-stream``),
requests signed with AWS Signature Version 4 by botocore.

Translation from the OpenAI chat shape: system messages become ``system`` blocks; user / assistant / tool
messages become ``messages`` with ``text``, ``image`` (data URLs), ``toolUse`` and ``toolResult`` blocks
(tool results travel in a user message, and consecutive messages of one role are merged, since Converse
wants the roles to alternate); sampling goes in ``inferenceConfig``; tools in ``toolConfig`` (``none``
sends no tools: Converse cannot forbid them); the model config's ``other`` goes in
``additionalModelRequestFields``. Converse has no ``n``: num_samples > 1 runs that many calls. Streams are
``application/vnd.amazon.eventstream`` frames, decoded with botocore's ``EventStreamBuffer``.
"""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from loopgate.errors import (
    ProviderError,
    ProviderKeyMissing,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from loopgate.providers.base import (
    JSON,
    GenerationCall,
    ProviderResult,
    StreamDelta,
    StreamEnd,
    StreamEvent,
    ToolCallDelta,
    normalise_finish_reason,
)
from loopgate.providers.bedrock_wire import generation, tool_config, usage_of, wire_messages
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.http_client import ClientError, Response
from loopgate.providers.retry import NO_RETRY, RetryPolicy, send
from loopgate.providers.streams import merge, total_usage
from loopgate.providers.wire import error_message, parse_object, status_error, tool_arguments

# Exceptions a ConverseStream reports mid-stream, as the HTTP status the same failure gets before a stream.
_STREAM_EXCEPTION_STATUS = {
    "throttlingException": 429,
    "validationException": 400,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 424,
}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @classmethod
    def parse(cls, value: str) -> "AwsCredentials | None":
        """``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]``, the form of ``provider_api_keys.bedrock``."""
        parts = value.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            return None
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None)


class BedrockConverseAdapter:
    def __init__(
        self,
        *,
        name: str,
        display_name: str,
        key_field: str | None,
        region: str,
        base_url: str | None,
        default_credentials: AwsCredentials | None,
        http: UpstreamHTTP,
        retry: RetryPolicy = NO_RETRY,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.key_field = key_field
        self._region = region
        self._base = (base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        self._default_credentials = default_credentials
        self._http = http
        self._retry = retry

    # -- request building -------------------------------------------------------------------------------

    def build_request(self, call: GenerationCall) -> JSON:
        system, messages = wire_messages(call.messages)
        body: JSON = {"messages": messages}
        if system:
            body["system"] = system
        stop = [call.stop] if isinstance(call.stop, str) else call.stop
        inference = {
            "maxTokens": call.max_tokens if call.max_tokens and call.max_tokens > 0 else None,
            "temperature": call.temperature,
            "topP": call.top_p,
            "stopSequences": stop or None,
        }
        inference = {key: value for key, value in inference.items() if value is not None}
        if inference:
            body["inferenceConfig"] = inference
        tools = tool_config(call.tools, call.tool_choice)
        if tools:
            body["toolConfig"] = tools
        if call.other:
            body["additionalModelRequestFields"] = call.other
        return body

    def _credentials(self, call: GenerationCall) -> AwsCredentials:
        found = AwsCredentials.parse(call.api_key) if call.api_key else self._default_credentials
        if found is None:
            raise ProviderKeyMissing(
                f"No AWS credentials for provider '{self.name}': pass provider_api_keys.bedrock as "
                "ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN] in the request, or set "
                "LOOPGATE_BEDROCK_ACCESS_KEY_ID and LOOPGATE_BEDROCK_SECRET_ACCESS_KEY on the server.",
                origin=self.display_name,
                provider=self.name,
                variable="LOOPGATE_BEDROCK_ACCESS_KEY_ID and LOOPGATE_BEDROCK_SECRET_ACCESS_KEY",
                key_format="ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]",
            )
        return found

    def _signed(
        self, call: GenerationCall, action: str, data: bytes, accept: str
    ) -> tuple[str, dict[str, str]]:
        """The URL (sent exactly as signed) and the SigV4-signed headers of one call."""
        credentials = self._credentials(call)
        url = f"{self._base}/model/{quote(call.model, safe='')}/{action}"
        request = AWSRequest(
            method="POST", url=url, data=data, headers={"Content-Type": "application/json", "Accept": accept}
        )
        signer = SigV4Auth(
            Credentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token),
            "bedrock",
            self._region,
        )
        signer.add_auth(request)
        return url, dict(request.headers.items())

    async def _send(self, url: str, data: bytes, headers: dict[str, str]) -> Response:
        origin = self.display_name
        return await send(
            self._http,
            url,
            data,
            headers,
            policy=self._retry,
            origin=origin,
            status_error=lambda status, raw, head: status_error(origin, status, raw, head),
            request_timeout=self._http.timeout(self.name),
        )

    # -- plain calls --------------------------------------------------------------------------------------

    async def generate(self, call: GenerationCall) -> ProviderResult:
        request = self.build_request(call)
        data = orjson.dumps(request)
        url, headers = self._signed(call, "converse", data, "application/json")
        responses = list(
            await asyncio.gather(*(self._post(url, data, headers) for _ in range(max(call.n, 1))))
        )
        generations = [generation(index, response) for index, response in enumerate(responses)]
        usage = total_usage(usage_of(response.get("usage")) for response in responses)
        return ProviderResult(generations=generations, request=request, responses=responses, usage=usage)

    async def _post(self, url: str, data: bytes, headers: dict[str, str]) -> JSON:
        try:
            async with await self._send(url, data, headers) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{self.display_name} did not answer in time", origin=self.display_name
            ) from exc
        except ClientError as exc:
            raise self._unreachable(url, exc) from exc
        return parse_object(raw, self.display_name)

    def _unreachable(self, url: str, exc: Exception) -> ProviderError:
        origin = self.display_name
        return UpstreamConnectionError(f"Could not reach {origin} at {url}: {exc}", origin=origin)

    # -- streams ------------------------------------------------------------------------------------------

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        request = self.build_request(call)
        data = orjson.dumps(request)
        url, headers = self._signed(call, "converse-stream", data, "application/vnd.amazon.eventstream")
        assemblies = [_StreamAssembly(index) for index in range(max(call.n, 1))]
        async for delta in merge([self._events(url, data, headers, assembly) for assembly in assemblies]):
            yield delta
        usage = total_usage(usage_of(assembly.usage) for assembly in assemblies)
        yield StreamEnd(request=request, responses=[a.result() for a in assemblies], usage=usage)

    async def _events(
        self, url: str, data: bytes, headers: dict[str, str], assembly: "_StreamAssembly"
    ) -> AsyncGenerator[StreamDelta, None]:
        origin = self.display_name
        decoder = EventStreamBuffer()
        try:
            async with (
                await self._send(url, data, headers) as response,
                aclosing(response.iter_chunks()) as chunks,
            ):
                async for chunk in chunks:
                    decoder.add_data(chunk)
                    for message in decoder:
                        kind = message.headers.get(":message-type")
                        payload = parse_object(message.payload or b"{}", origin)
                        if kind != "event":
                            exception = message.headers.get(":exception-type") or message.headers.get(
                                ":error-code", "error"
                            )
                            raise UpstreamStatusError(
                                error_message(payload) or f"{origin} reported {exception}",
                                origin=origin,
                                status_code=_STREAM_EXCEPTION_STATUS.get(exception, 502),
                                body={"type": exception, **payload},
                            )
                        delta = assembly.add(message.headers.get(":event-type", ""), payload)
                        if delta is not None:
                            yield delta
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{origin} did not answer in time", origin=origin) from exc
        except ClientError as exc:
            raise self._unreachable(url, exc) from exc
        if assembly.stop_reason is None:
            raise ProviderError(f"{origin} ended the stream without messageStop", origin=origin)


# -- request translation ----------------------------------------------------------------------------------


class _StreamAssembly:
    """One ConverseStream (one sample): events in, deltas out, and the Converse response it amounts to."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.chunks = 0
        self.role = "assistant"
        self.blocks: dict[int, JSON] = {}
        self.positions: dict[int, int] = {}  # content block index -> tool call position
        self.stop_reason: str | None = None
        self.usage: JSON | None = None
        self.metrics: JSON | None = None

    def add(self, kind: str, event: JSON) -> StreamDelta | None:
        self.chunks += 1
        block_index = int(event.get("contentBlockIndex") or 0)
        if kind == "messageStart":
            self.role = event.get("role") or self.role
        elif kind == "contentBlockStart":
            use = (event.get("start") or {}).get("toolUse")
            if use:
                position = self.positions.setdefault(block_index, len(self.positions))
                self.blocks[block_index] = {"toolUse": {**use, "input": ""}}
                tool = ToolCallDelta(position, use.get("toolUseId"), use.get("name"))
                return StreamDelta(index=self.index, tool_calls=[tool])
        elif kind == "contentBlockDelta":
            delta = event.get("delta") or {}
            if isinstance(delta.get("text"), str):
                block = self.blocks.setdefault(block_index, {"text": ""})
                block["text"] = block.get("text", "") + delta["text"]
                return StreamDelta(index=self.index, text=delta["text"]) if delta["text"] else None
            if delta.get("toolUse"):
                piece = str(delta["toolUse"].get("input") or "")
                block = self.blocks.setdefault(block_index, {"toolUse": {"input": ""}})
                block["toolUse"]["input"] += piece
                position = self.positions.setdefault(block_index, len(self.positions))
                return StreamDelta(index=self.index, tool_calls=[ToolCallDelta(position, arguments=piece)])
        elif kind == "messageStop":
            self.stop_reason = event.get("stopReason") or "end_turn"
            return StreamDelta(index=self.index, finish_reason=normalise_finish_reason(self.stop_reason))
        elif kind == "metadata":
            self.usage = event.get("usage")
            self.metrics = event.get("metrics")
        return None

    def result(self) -> JSON:
        content = []
        for position in sorted(self.blocks):
            block = self.blocks[position]
            if "toolUse" in block:
                use = dict(block["toolUse"])
                use["input"] = tool_arguments(use.get("input"))
                block = {"toolUse": use}
            content.append(block)
        return {
            "output": {"message": {"role": self.role, "content": content}},
            "stopReason": self.stop_reason,
            "usage": self.usage,
            "metrics": self.metrics,
            "stream_chunks": self.chunks,
        }
