"""HTTP plumbing shared by every adapter: post a JSON body, read a JSON answer or an SSE stream's ``data:``
payloads, and turn failures into the error hierarchy (status, body and the ``retry-after`` / request-id
headers kept; never classified by message text). The one place an upstream failure becomes an
``UpstreamStatusError`` / ``UpstreamConnectionError`` / ``UpstreamTimeout``, and a missing key a
``ProviderKeyMissing``."""

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from loopgate.errors import (
    ProviderError,
    ProviderKeyMissing,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from loopgate.providers.base import JSON, GenerationCall
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.http_client import ClientError, Response, Timeout
from loopgate.providers.retry import NO_RETRY, RetryPolicy, send

_KEPT_HEADERS = ("retry-after", "x-request-id", "request-id", "x-goog-request-id", "x-trace-id")

BodyError = Callable[[JSON], ProviderError | None]
"""An adapter's check of a success body or stream event: the error it reports inside a 200, if any."""


def missing_key(name: str, origin: str, key_field: str | None, variable: str) -> ProviderKeyMissing:
    """No key in the request nor the server configuration: name where one goes."""
    if key_field is None:
        where = (
            f"the v4 request has no provider_api_keys.{name}, "
            f"so set {variable} on the server (then restart `loopgate serve`)."
        )
    else:
        where = f"pass provider_api_keys.{key_field} in the request, or set {variable} on the server."
    return ProviderKeyMissing(
        f"No API key for provider '{name}': {where}", origin=origin, provider=name, variable=variable
    )


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
    """One upstream endpoint family: the shared HTTP client, the origin named in errors, the retry policy
    (retries happen only before a success status, so a started stream is never sent twice)."""

    def __init__(
        self,
        http: UpstreamHTTP,
        origin: str,
        retry: RetryPolicy = NO_RETRY,
        body_error: BodyError | None = None,
        timeout: Timeout | None = None,
    ) -> None:
        self._http = http
        self.origin = origin
        self._retry = retry
        self._body_error = body_error
        self._timeout = timeout  # the provider's (``UpstreamHTTP.timeout``); None: the client's default

    async def _send(self, url: str, body: JSON, headers: dict[str, str]) -> Response:
        return await send(
            self._http,
            url,
            orjson.dumps(body),
            headers,
            policy=self._retry,
            origin=self.origin,
            status_error=lambda status, raw, head: status_error(self.origin, status, raw, head),
            request_timeout=self._timeout,
        )

    async def post(self, url: str, body: JSON, headers: dict[str, str]) -> JSON:
        try:
            async with await self._send(url, body, headers) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.origin} did not answer in time", origin=self.origin) from exc
        except ClientError as exc:
            raise self._unreachable(url, exc) from exc
        return self._parse(raw)  # an error in a 200 body is not retried: asking again gets the same

    async def events(self, url: str, body: JSON, headers: dict[str, str]) -> AsyncGenerator[JSON, None]:
        """The JSON objects of an SSE stream's ``data:`` lines, in order, as they arrive."""
        try:
            async with (
                await self._send(url, body, headers) as response,
                aclosing(response.line_batches()) as batches,
            ):
                async for lines in batches:
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            return
                        if payload:
                            yield self._parse(payload)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.origin} did not answer in time", origin=self.origin) from exc
        except ClientError as exc:
            raise self._unreachable(url, exc) from exc

    def _parse(self, raw: bytes) -> JSON:
        parsed = parse_object(raw, self.origin)
        error = self._body_error(parsed) if self._body_error is not None else None
        if error is not None:
            raise error
        return parsed

    def _unreachable(self, url: str, exc: Exception) -> ProviderError:
        # The URL may carry no key (keys travel in headers), so naming it is safe.
        return UpstreamConnectionError(f"Could not reach {self.origin} at {url}: {exc}", origin=self.origin)


class HTTPAdapter:
    """What every HTTP adapter holds: its names (``name`` its ModelProviders value, ``display_name`` the
    ``origin`` in errors, ``key_field`` its ProviderApiKeys member or None), its key, and its ``Upstream``.
    A subclass sets ``path`` (appended to the base URL) and may check success bodies in ``_error_in_body``."""

    path = ""

    def __init__(
        self,
        *,
        name: str,
        display_name: str,
        key_field: str | None = None,
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
        self._url = base_url.rstrip("/") + self.path
        self._default_api_key = default_api_key
        self._upstream = Upstream(
            http, display_name, retry, body_error=self._error_in_body, timeout=http.timeout(name)
        )

    def _api_key(self, call: GenerationCall) -> str:
        """The request's key, else the server's; neither is a ``ProviderKeyMissing`` naming both places."""
        key = call.api_key or self._default_api_key
        if not key:
            raise missing_key(self.name, self.display_name, self.key_field, self._key_variable)
        return key

    def _error_in_body(self, body: JSON) -> ProviderError | None:
        return None


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


def error_in_body(origin: str, body: JSON) -> UpstreamStatusError | None:
    """``{"error": ...}`` in a 200 body or stream event (OpenAI and vLLM mid-stream, OpenRouter and Google in
    plain bodies): an upstream failure, not an empty answer."""
    if not body.get("error"):
        return None
    message = error_message(body) or f"{origin} reported an error"
    return UpstreamStatusError(message, origin=origin, status_code=502, body=body)
