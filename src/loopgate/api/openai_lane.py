"""``POST /v1/chat/completions`` served straight from ASGI, as ``api/fastlane.py`` serves ``POST /v4/chat``.

The OpenAI-compatible door is how most OpenAI-SDK code (and most gateway benchmarks) would call loopgate,
so it skips FastAPI as the v4 chat does: through FastAPI's routing, middleware and request objects it used
2.2x the CPU of ``POST /v4/chat`` per request (861 against 386 us at c=32, docs/benchmarks.md). The lane
and what it needs are imported on the first ``/v1`` request, not at start-up. ``GET /v1/models`` stays a
FastAPI route (``api/routes/openai_compat.py``) and shares this module's auth and error shapes.

Every failure comes back in OpenAI's error shape (``{"error": {message, type, param, code}}``, which the
SDKs read), never in v4's ``{"detail": ...}``. Validation errors are 400 ``invalid_request_error``, as
OpenAI answers them.
"""

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from loopgate.api.bodies import unstorable
from loopgate.api.fastlane import TOO_LARGE, read_body
from loopgate.api.keys import authenticate
from loopgate.api.responses import JSONAnswer, JSONBytes, storage_unavailable
from loopgate.api.sse import SSEResponse
from loopgate.errors import (
    AuthenticationError,
    ConflictError,
    LoopgateError,
    NotFoundError,
    ProviderError,
    ProviderKeyMissing,
    RequestInvalid,
    RequestTooLarge,
    UpstreamStatusError,
)
from loopgate.schemas.openai_compat import ChatCompletionRequest
from loopgate.service.openai_compat import (
    DEFAULT_PROJECT,
    HEADERS,
    PROVIDER_KEY_HEADER,
    DoorContext,
    OpenAIDoor,
    UnknownModel,
)
from loopgate.service.openai_shapes import error_object, error_type, provider_error
from loopgate.store.repository import Store

_log = logging.getLogger("loopgate.api")
PATH = "/v1/chat/completions"
LOG_IDS_HEADER = "X-Loopgate-Log-Ids"
SESSION_HEADER = "X-Loopgate-Session-Id"


class OpenAIChatLane:
    """An ASGI app for ``POST /v1/chat/completions`` requests only (the caller routes them here)."""

    def __init__(self, store: Store, door: OpenAIDoor, *, max_body: int) -> None:
        self._store = store
        self._door = door
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, self._max_body)
        if body is None:
            return  # the client left before its body arrived: nobody to answer
        response: Response | JSONAnswer
        try:
            response = await self._respond(body, Headers(scope=scope))
        except LoopgateError as exc:
            response = error_response(exc)
        except Exception as exc:
            failure = storage_unavailable(exc, f"POST {PATH}")
            response = (
                openai_error(500, error_object("Internal server error", "server_error"))
                if failure is None
                else error_response(failure)
            )
        await response(scope, receive, send)

    async def _respond(self, raw: bytes, headers: Headers) -> Response | JSONAnswer:
        if raw is TOO_LARGE:
            raise RequestTooLarge(self._max_body)
        org_id = await organization(self._store, headers)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = "We could not parse the JSON body of your request: it must be a JSON object"
            return openai_error(400, error_object(message, "invalid_request_error"))
        refused = unstorable(raw, parsed)
        if refused is not None:
            return validation_response([refused], parsed)
        try:
            body = ChatCompletionRequest.model_validate(parsed)
        except ValidationError as exc:
            return validation_response(exc.errors(), parsed)
        context = _context(headers)
        if body.stream:
            opened = await self._door.stream(org_id, body, context)
            response: Response = SSEResponse(opened.events)
            response.raw_headers += _answer_headers(opened.log_ids, opened.session_id)
            return response
        answer = await self._door.complete(org_id, body, context)
        return JSONAnswer(orjson.dumps(answer.body), _answer_headers(answer.log_ids, answer.session_id))


async def organization(store: Store, headers: Headers) -> str:
    """The key in ``X-API-KEY`` (loopgate's header), else ``Authorization: Bearer`` (what the OpenAI SDKs
    send). ``X-API-KEY`` wins so a client can keep a placeholder ``api_key`` that the SDK insists on."""
    key = headers.get("x-api-key")
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise AuthenticationError(
            "Missing API key: send a loopgate key as 'Authorization: Bearer lg_...' (the OpenAI SDK's "
            "api_key) or in X-API-KEY; create one with `loopgate keys create`"
        )
    return await authenticate(store, key)


def _context(headers: Headers) -> DoorContext:
    values = {name: _header(headers, header) for name, header in HEADERS.items()}
    project = values.pop("project")
    return DoorContext(
        project=DEFAULT_PROJECT if project is None else project,
        provider_key=_header(headers, PROVIDER_KEY_HEADER),
        **values,
    )


def _header(headers: Headers, name: str) -> str | None:
    """A header's value as UTF-8 (Starlette decodes header bytes as latin-1); None when absent. Present but
    empty stays empty, so an empty project name is refused like v4's rather than replaced."""
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _answer_headers(log_ids: list[str], session_id: str | None) -> list[tuple[bytes, bytes]]:
    """Where the answer's logs are (ASGI header pairs: lower-case names)."""
    pairs = [(LOG_IDS_HEADER, ",".join(log_ids))]
    if session_id is not None:
        pairs.append((SESSION_HEADER, session_id))
    return [(name.lower().encode(), value.encode()) for name, value in pairs]


# -- errors in OpenAI's shape -------------------------------------------------------------------------


def openai_error(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONBytes({"error": error}, status_code=status, headers=headers)


def error_response(exc: LoopgateError) -> Response:
    if isinstance(exc, ProviderError):
        return _provider_error_response(exc)
    if isinstance(exc, RequestInvalid):
        param = openai_param(exc.loc[1:] if exc.loc[:1] == ["body"] else exc.loc)
        return openai_error(400, error_object(exc.message, "invalid_request_error", param))
    if isinstance(exc, AuthenticationError):
        return openai_error(401, error_object(exc.message, "invalid_request_error", None, "invalid_api_key"))
    if isinstance(exc, UnknownModel):
        return openai_error(
            404, error_object(exc.message, "invalid_request_error", "model", "model_not_found")
        )
    if isinstance(exc, NotFoundError):
        return openai_error(404, error_object(exc.message, "invalid_request_error", None, "not_found"))
    if isinstance(exc, ConflictError):
        return openai_error(409, error_object(exc.message, "invalid_request_error", None, "conflict"))
    return openai_error(exc.status_code, error_object(exc.message, error_type(exc.status_code)))


def _provider_error_response(exc: ProviderError) -> Response:
    if isinstance(exc, ProviderKeyMissing) and exc.provider:
        message = _missing_key_message(exc)
        return openai_error(400, error_object(message, "invalid_request_error", None, "missing_provider_key"))
    # The upstream's Retry-After (and request id) reach the client, so it can back off as told.
    headers = exc.headers if isinstance(exc, UpstreamStatusError) else None
    return openai_error(exc.status_code, provider_error(exc), headers)


def _missing_key_message(exc: ProviderKeyMissing) -> str:
    """Where the door's client can put what is missing: a key in the header, the rest on the server."""
    form = f" as {exc.key_format}" if exc.key_format else ""
    key = f"send one in the {PROVIDER_KEY_HEADER} header{form}, or set {exc.variable} on the server"
    restart = "(then restart `loopgate serve`)"
    if not exc.server_only:
        return f"No API key for provider '{exc.provider}': {key} {restart}"
    needs = f"{' and '.join(exc.server_only)} set on the server"
    if exc.variable:
        needs += f", and a key: {key}"
    return f"Provider '{exc.provider}' needs {needs} {restart}"


def validation_response(errors: Sequence[Any], body: Any) -> Response:
    """400 naming the first bad parameter as OpenAI does (``messages[0].role``). pydantic's ``input`` is
    never echoed: it could hold a key or a whole conversation."""
    first = errors[0]
    param = body_param(first["loc"], body, missing=first["type"] == "missing")
    message = f"Invalid value for '{param}': {first['msg']}" if param else str(first["msg"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return openai_error(400, error_object(message, "invalid_request_error", param))


def body_param(loc: Sequence[str | int], body: Any, *, missing: bool) -> str | None:
    """The path of a pydantic error in the body as sent. pydantic's locations also name the union member
    it tried (``tool_choice.literal['none','auto','required']``, ``content.list[...]``); those name no part
    of the body, so the path keeps only the steps that exist in it, plus the missing key of a ``missing``
    error."""
    param = ""
    node = body
    for position, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node, param = node[part], f"{param}[{part}]"
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            node, param = node[part], f"{param}.{part}" if param else part
        elif missing and position == len(loc) - 1:
            param = f"{param}.{part}" if param else str(part)
    return param or None


# A v4 field's name in the OpenAI request, for errors raised by the v4 path (``service/prepare.py``).
_V4_NAMES = {"num_samples": "n", "model_config": None, "provider": "model", **HEADERS}


def openai_param(loc: Sequence[str | int]) -> str | None:
    """``["messages", 0, "content"]`` -> ``messages[0].content``; a v4 location is renamed to what the
    client sent (``model_config.temperature`` -> ``temperature``, ``project`` -> its header)."""
    param = ""
    for part in loc:
        if isinstance(part, int):
            param += f"[{part}]"
            continue
        name = _V4_NAMES.get(part, part)
        if name is None:
            continue
        if name.startswith("X-"):
            return name
        param += f".{name}" if param else name
    return param or None
