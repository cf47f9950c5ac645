"""HTTP plumbing shared by the non-OpenAI adapters (Gemini, Cohere): post a JSON body, read a JSON answer or
an SSE stream's ``data:`` payloads, and turn failures into the error hierarchy (status, body and the
``retry-after`` / request-id headers kept; never classified by message text)."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson

from loopgate.errors import ProviderError, UpstreamConnectionError, UpstreamStatusError, UpstreamTimeout
from loopgate.providers.base import JSON
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.retry import NO_RETRY, RetryPolicy, send

_T = TypeVar("_T")

_KEPT_HEADERS = ("retry-after", "x-request-id", "x-goog-request-id", "x-trace-id")


def error_message(body: Any) -> str | None:
    """The message of an error body: ``{"error": {"message"}}`` (Google, OpenAI), ``{"message"}`` (Cohere)."""
    if isinstance(body, list) and body:
        body = body[0]  # Google's JSON-array streams wrap the error object in a list
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return None


def status_error(origin: str, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamStatusError:
    body: Any
    try:
        body = orjson.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    message = error_message(body) or f"{origin} returned HTTP {status}"
    kept = {k.lower(): v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
    return UpstreamStatusError(message, origin=origin, status_code=status, body=body, headers=kept)


def parse_object(raw: bytes, origin: str) -> JSON:
    try:
        parsed = orjson.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamConnectionError(f"{origin} sent a body that is not a JSON object", origin=origin)
    return parsed


class Upstream:
    """One upstream endpoint family: the shared session, the origin named in errors, the retry policy
    (retries happen only before a success status, so a started stream is never sent twice)."""

    def __init__(self, http: UpstreamHTTP, origin: str, retry: RetryPolicy = NO_RETRY) -> None:
        self._http = http
        self.origin = origin
        self._retry = retry

    async def _send(self, url: str, body: JSON, headers: dict[str, str]) -> aiohttp.ClientResponse:
        return await send(
            self._http,
            url,
            orjson.dumps(body),
            headers,
            policy=self._retry,
            origin=self.origin,
            status_error=lambda status, raw, head: status_error(self.origin, status, raw, head),
        )

    async def post(self, url: str, body: JSON, headers: dict[str, str]) -> JSON:
        try:
            async with await self._send(url, body, headers) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.origin} did not answer in time", origin=self.origin) from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(url, exc) from exc
        return parse_object(raw, self.origin)

    async def events(self, url: str, body: JSON, headers: dict[str, str]) -> AsyncIterator[JSON]:
        """The JSON objects of an SSE stream's ``data:`` lines, in order, as they arrive."""
        try:
            async with await self._send(url, body, headers) as response:
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        break
                    if payload:
                        yield parse_object(payload, self.origin)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.origin} did not answer in time", origin=self.origin) from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(url, exc) from exc

    def _unreachable(self, url: str, exc: Exception) -> ProviderError:
        # The URL may carry no key (keys travel in headers), so naming it is safe.
        return UpstreamConnectionError(f"Could not reach {self.origin} at {url}: {exc}", origin=self.origin)


def tool_arguments(arguments: Any) -> JSON:
    """OpenAI-shape arguments (a JSON string) as the object Gemini and Cohere expect."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except ValueError:
        return {"arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def merge(sources: list[AsyncIterator[_T]]) -> AsyncIterator[_T]:
    """Interleave several async iterators as their items arrive; the first failure propagates."""
    if len(sources) == 1:
        async for item in sources[0]:
            yield item
        return
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump(source: AsyncIterator[_T]) -> None:
        try:
            async for item in source:
                await queue.put(("item", item))
        except Exception as exc:
            await queue.put(("error", exc))
        finally:
            await queue.put(("done", None))

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    try:
        remaining = len(tasks)
        while remaining:
            kind, value = await queue.get()
            if kind == "error":
                raise value
            if kind == "done":
                remaining -= 1
            else:
                yield value
    finally:
        for task in tasks:
            task.cancel()
