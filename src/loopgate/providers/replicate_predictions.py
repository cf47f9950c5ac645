"""Adapter for Replicate's predictions API, for text models (Llama, Mistral, ... served by Cog).

A model config's ``model`` is ``owner/name`` (``POST /v1/models/{owner}/{name}/predictions``, the model's
latest version) or ``owner/name:version`` (``POST /v1/predictions`` with ``version``). The chat is rendered
as one ``prompt`` text with the system messages split out as ``system_prompt``; sampling parameters go in
``input`` under the names Replicate's language models use (``max_tokens`` and the older ``max_new_tokens``,
``stop_sequences`` comma-separated). Plain calls ask ``Prefer: wait``; a prediction still running after that
is polled at ``urls.get`` until it succeeds, fails or is canceled (bounded by the provider timeout). Streams
create the prediction with ``stream: true`` and read the server-sent events at ``urls.stream``
(``output`` / ``done`` / ``error``). Replicate has no ``n``: num_samples > 1 runs that many predictions.
Tools are not sent: Replicate's text models take a prompt, not a tool schema.
"""

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from loopgate.errors import (
    ProviderError,
    RequestInvalid,
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
    Usage,
)
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.http_client import ClientError
from loopgate.providers.retry import NO_RETRY, RetryPolicy
from loopgate.providers.streams import merge, total_usage
from loopgate.providers.wire import Upstream, error_message, missing_key, parse_object, status_error

_FINAL = ("succeeded", "failed", "canceled")


class ReplicatePredictionsAdapter:
    key_field: str | None = None

    def __init__(
        self,
        *,
        name: str,
        display_name: str,
        key_variable: str,
        base_url: str,
        default_api_key: str | None,
        http: UpstreamHTTP,
        retry: RetryPolicy = NO_RETRY,
        poll_interval: float = 0.5,
        max_wait: float = 600.0,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self._key_variable = key_variable
        self._base = base_url.rstrip("/")
        self._default_api_key = default_api_key
        self._http = http
        self._upstream = Upstream(http, display_name, retry, timeout=http.timeout(name))
        self._poll_interval = poll_interval
        self._max_wait = max_wait

    # -- request building -------------------------------------------------------------------------------

    def build_request(self, call: GenerationCall, *, stream: bool) -> tuple[str, JSON]:
        system, prompt = render_prompt(call.messages)
        max_tokens = call.max_tokens if call.max_tokens and call.max_tokens > 0 else None
        stop = [call.stop] if isinstance(call.stop, str) else call.stop
        optional = {
            "system_prompt": system,
            "max_tokens": max_tokens,
            "max_new_tokens": max_tokens,
            "temperature": call.temperature,
            "top_p": call.top_p,
            "stop_sequences": ",".join(stop) if stop else None,
            "seed": call.seed,
            "presence_penalty": call.presence_penalty or None,
            "frequency_penalty": call.frequency_penalty or None,
        }
        model_input: JSON = {"prompt": prompt}
        model_input.update({key: value for key, value in optional.items() if value is not None})
        model_input.update(call.other)
        body: JSON = {"input": model_input}
        if stream:
            body["stream"] = True
        model, _, version = call.model.partition(":")
        if version:
            return f"{self._base}/v1/predictions", {"version": version, **body}
        return f"{self._base}/v1/models/{_model_path(model)}/predictions", body

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        # A v4 request cannot carry a Replicate key (provider_api_keys has no member for it), but the
        # OpenAI-compatible door can, in X-Provider-Api-Key: that call's key wins over the server's.
        key = call.api_key or self._default_api_key
        if not key:
            raise missing_key(self.name, self.display_name, None, self._key_variable)
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    # -- plain calls --------------------------------------------------------------------------------------

    async def generate(self, call: GenerationCall) -> ProviderResult:
        headers = {**self._headers(call), "Prefer": "wait"}
        url, request = self.build_request(call, stream=False)
        responses = list(
            await asyncio.gather(*(self._predict(url, request, headers) for _ in range(max(call.n, 1))))
        )
        generations = [
            Generation(index=index, raw_output=output_text(r.get("output")), finish_reason="stop")
            for index, r in enumerate(responses)
        ]
        usage = total_usage(_usage(response) for response in responses)
        return ProviderResult(generations=generations, request=request, responses=responses, usage=usage)

    async def _predict(self, url: str, request: JSON, headers: dict[str, str]) -> JSON:
        prediction = await self._upstream.post(url, request, headers)
        deadline = time.monotonic() + self._max_wait
        while prediction.get("status") not in _FINAL:
            poll = (prediction.get("urls") or {}).get("get")
            if not poll:
                raise ProviderError(
                    f"{self.display_name} sent a prediction without urls.get", origin=self.display_name
                )
            if time.monotonic() >= deadline:
                raise UpstreamTimeout(
                    f"{self.display_name} prediction {prediction.get('id')} did not finish in time",
                    origin=self.display_name,
                )
            await asyncio.sleep(self._poll_interval)
            prediction = await self._get(poll, headers)
        self._check(prediction)
        return prediction

    async def _get(self, url: str, headers: dict[str, str]) -> JSON:
        origin = self.display_name
        try:
            async with await self._http.request(
                "GET", url, headers=headers, time_limit=self._http.timeout(self.name)
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise status_error(origin, response.status, raw, response.headers)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{origin} did not answer in time", origin=origin) from exc
        except ClientError as exc:
            raise _unreachable(origin, url, exc) from exc
        return parse_object(raw, origin)

    def _check(self, prediction: JSON) -> None:
        status = prediction.get("status")
        if status == "succeeded":
            return
        message = error_message({"error": prediction.get("error")}) or f"prediction {status}"
        raise UpstreamStatusError(
            f"{self.display_name} prediction {status}: {message}",
            origin=self.display_name,
            status_code=502,
            body=prediction,
        )

    # -- streams ------------------------------------------------------------------------------------------

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        headers = self._headers(call)
        url, request = self.build_request(call, stream=True)
        assemblies = [_StreamAssembly(index) for index in range(max(call.n, 1))]
        merged = merge([self._stream_one(url, request, headers, assembly) for assembly in assemblies])
        async for delta in merged:
            yield delta
        usage = total_usage(_usage(assembly.prediction) for assembly in assemblies)
        yield StreamEnd(request=request, responses=[a.result() for a in assemblies], usage=usage)

    async def _stream_one(
        self, url: str, request: JSON, headers: dict[str, str], assembly: "_StreamAssembly"
    ) -> AsyncGenerator[StreamDelta, None]:
        prediction = await self._upstream.post(url, request, headers)
        assembly.prediction = prediction
        if prediction.get("status") in ("failed", "canceled"):
            self._check(prediction)
        stream_url = (prediction.get("urls") or {}).get("stream")
        if not stream_url:
            raise ProviderError(
                f"{self.display_name} gave no stream URL: does the model support streaming?",
                origin=self.display_name,
            )
        stream_headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-store"}
        origin = self.display_name
        try:
            async with await self._http.request(
                "GET", stream_url, headers=stream_headers, time_limit=self._http.timeout(self.name)
            ) as response:
                if response.status >= 400:
                    raise status_error(origin, response.status, await response.read(), response.headers)
                async with aclosing(_sse(response.iter_lines())) as events:
                    async for event, data in events:
                        assembly.chunks += 1
                        if event == "output":
                            assembly.text.append(data)
                            yield StreamDelta(index=assembly.index, text=data)
                        elif event == "error":
                            body = _json_or_text(data)
                            message = error_message(body) or "stream error"
                            raise UpstreamStatusError(
                                f"{origin} prediction failed: {message}",
                                origin=origin,
                                status_code=502,
                                body=body,
                            )
                        elif event == "done":
                            reason = _json_or_text(data)
                            assembly.done = (isinstance(reason, dict) and reason.get("reason")) or "succeeded"
                            break
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{origin} did not answer in time", origin=origin) from exc
        except ClientError as exc:
            raise _unreachable(origin, stream_url, exc) from exc
        if assembly.done is None:
            raise ProviderError(f"{origin} ended the stream without a done event", origin=origin)
        if assembly.done != "succeeded":
            raise UpstreamStatusError(
                f"{origin} prediction {assembly.done}", origin=origin, status_code=502, body=assembly.result()
            )
        yield StreamDelta(index=assembly.index, finish_reason="stop")


# -- translation --------------------------------------------------------------------------------------------


def render_prompt(messages: list[JSON]) -> tuple[str | None, str]:
    """(system_prompt, prompt): one user turn is sent as it is; a longer chat as ``Role: text`` turns ending
    with ``Assistant:``, the model's cue to answer."""
    system = [_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    if len(turns) == 1 and turns[0].get("role") == "user":
        prompt = _text(turns[0].get("content"))
    else:
        lines = [f"{str(m.get('role') or 'user').capitalize()}: {_text(m.get('content'))}" for m in turns]
        prompt = "\n\n".join([*lines, "Assistant:"])
    return ("\n\n".join(system) or None), prompt


def output_text(output: Any) -> str:
    if isinstance(output, list):
        return "".join(str(piece) for piece in output if piece is not None)
    return "" if output is None else str(output)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def _usage(prediction: JSON | None) -> Usage | None:
    metrics = (prediction or {}).get("metrics") or {}
    if "input_token_count" not in metrics or "output_token_count" not in metrics:
        return None
    return Usage(int(metrics["input_token_count"]), int(metrics["output_token_count"]))


def _unreachable(origin: str, url: str, exc: Exception) -> ProviderError:
    return UpstreamConnectionError(f"Could not reach {origin} at {url}: {exc}", origin=origin)


def _json_or_text(data: str) -> Any:
    try:
        return parse_object(data.encode(), "")
    except ProviderError:
        return data


async def _sse(lines: AsyncGenerator[bytes, None]) -> AsyncGenerator[tuple[str, str], None]:
    """(event, data) of each server-sent event; multi-line data joined with newlines, as the spec says.
    Closes ``lines`` when it is closed itself (the stream stops reading at the ``done`` event)."""
    event, data = "message", list[str]()
    async with aclosing(lines):
        async for raw in lines:
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
    if data:
        yield event, "\n".join(data)


class _StreamAssembly:
    """One streamed prediction: the created prediction plus the output events, as the prediction it became."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.prediction: JSON = {}
        self.text: list[str] = []
        self.chunks = 0
        self.done: str | None = None

    def result(self) -> JSON:
        return {
            **self.prediction,
            "status": self.done or self.prediction.get("status"),
            "output": self.text,
            "stream_chunks": self.chunks,
        }


def _model_path(model: str) -> str:
    """``owner/name`` as two encoded path segments. The model comes from the request and the call carries
    the server's key: anything else (``a/b/../../v1/trainings``, ``a/b?x=``) would aim it elsewhere."""
    parts = model.split("/")
    if len(parts) != 2 or any(part in ("", ".", "..") for part in parts):
        raise RequestInvalid(
            ["body", "model_config", "model"], "A Replicate model is owner/name or owner/name:version"
        )
    return "/".join(quote(part, safe="") for part in parts)
