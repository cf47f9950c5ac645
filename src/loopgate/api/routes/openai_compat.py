"""``POST /v1/chat/completions`` and ``GET /v1/models``: the door for code written against OpenAI's SDKs
(``base_url="http://HOST:PORT/v1"``, a loopgate API key as ``api_key``).

These routes read the body and headers themselves instead of through FastAPI's models and dependencies:
every failure must come back in OpenAI's error shape (``{"error": {message, type, param, code}}``, which
the SDKs read), never in v4's ``{"detail": ...}`` that the app-wide handlers write. Validation errors are
400 ``invalid_request_error``, as OpenAI answers them. The routes stay out of the OpenAPI document, which
describes the v4 API.
"""

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from loopgate.api.keys import authenticate
from loopgate.api.responses import JSONBytes
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

_log = logging.getLogger("loopgate.api")
router = APIRouter(prefix="/v1", include_in_schema=False)
LOG_IDS_HEADER = "X-Loopgate-Log-Ids"
SESSION_HEADER = "X-Loopgate-Session-Id"


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    door: OpenAIDoor = request.app.state.openai_door
    try:
        org_id = await _organization(request)
        try:
            parsed = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            message = "We could not parse the JSON body of your request: it must be a JSON object"
            return _error(400, error_object(message, "invalid_request_error"))
        try:
            body = ChatCompletionRequest.model_validate(parsed)
        except ValidationError as exc:
            return validation_response(exc.errors(), parsed)
        context = _context(request.headers)
        if body.stream:
            opened = await door.stream(org_id, body, context)
            response: Response = SSEResponse(opened.events)
            pairs = _answer_headers(opened.log_ids, opened.session_id)
            response.raw_headers += [(name.lower().encode(), value.encode()) for name, value in pairs]
            return response
        answer = await door.complete(org_id, body, context)
        return JSONBytes(answer.body, headers=dict(_answer_headers(answer.log_ids, answer.session_id)))
    except LoopgateError as exc:
        return error_response(exc)
    except ClientDisconnect:
        return Response(status_code=499)  # the client left before its body arrived: nobody to answer
    except StarletteHTTPException as exc:
        if exc.status_code != 413:
            raise
        # A chunked body over LOOPGATE_MAX_REQUEST_BYTES (FastAPI's max_body_size stops reading it).
        return error_response(RequestTooLarge(request.app.state.settings.max_request_bytes))
    except Exception:
        _log.exception("unexpected error on POST /v1/chat/completions")
        return _error(500, error_object("Internal server error", "server_error"))


@router.get("/models")
async def list_models(request: Request) -> Response:
    try:
        await _organization(request)
    except LoopgateError as exc:
        return error_response(exc)
    door: OpenAIDoor = request.app.state.openai_door
    return JSONBytes({"object": "list", "data": door.models()})


@router.get("/models/{model:path}")
async def get_model(request: Request, model: str) -> Response:
    try:
        await _organization(request)
    except LoopgateError as exc:
        return error_response(exc)
    door: OpenAIDoor = request.app.state.openai_door
    found = next((entry for entry in door.models() if entry["id"] == model), None)
    if found is None:
        message = f"The model '{model}' is not listed by this server (GET /v1/models lists what is)"
        return _error(404, error_object(message, "invalid_request_error", "model", "model_not_found"))
    return JSONBytes(found)


async def _organization(request: Request) -> str:
    """The key in ``X-API-KEY`` (loopgate's header), else ``Authorization: Bearer`` (what the OpenAI SDKs
    send). ``X-API-KEY`` wins so a client can keep a placeholder ``api_key`` that the SDK insists on."""
    headers = request.headers
    key = headers.get("x-api-key")
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise AuthenticationError(
            "Missing API key: send a loopgate key as 'Authorization: Bearer lg_...' (the OpenAI SDK's "
            "api_key) or in X-API-KEY; create one with `loopgate keys create`"
        )
    return await authenticate(request.app.state.store, key)


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


def _answer_headers(log_ids: list[str], session_id: str | None) -> list[tuple[str, str]]:
    pairs = [(LOG_IDS_HEADER, ",".join(log_ids))]
    if session_id is not None:
        pairs.append((SESSION_HEADER, session_id))
    return pairs


# -- errors in OpenAI's shape -------------------------------------------------------------------------


def _error(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONBytes({"error": error}, status_code=status, headers=headers)


def error_response(exc: LoopgateError) -> Response:
    if isinstance(exc, ProviderError):
        return _provider_error_response(exc)
    if isinstance(exc, RequestInvalid):
        param = openai_param(exc.loc[1:] if exc.loc[:1] == ["body"] else exc.loc)
        return _error(400, error_object(exc.message, "invalid_request_error", param))
    if isinstance(exc, AuthenticationError):
        return _error(401, error_object(exc.message, "invalid_request_error", None, "invalid_api_key"))
    if isinstance(exc, UnknownModel):
        return _error(404, error_object(exc.message, "invalid_request_error", "model", "model_not_found"))
    if isinstance(exc, NotFoundError):
        return _error(404, error_object(exc.message, "invalid_request_error", None, "not_found"))
    if isinstance(exc, ConflictError):
        return _error(409, error_object(exc.message, "invalid_request_error", None, "conflict"))
    return _error(exc.status_code, error_object(exc.message, error_type(exc.status_code)))


def _provider_error_response(exc: ProviderError) -> Response:
    if isinstance(exc, ProviderKeyMissing) and exc.provider:
        message = (
            f"No API key for provider '{exc.provider}': send one in the {PROVIDER_KEY_HEADER} header, "
            f"or set {exc.variable} on the server (then restart `loopgate serve`)"
        )
        return _error(400, error_object(message, "invalid_request_error", None, "missing_provider_key"))
    # The upstream's Retry-After (and request id) reach the client, so it can back off as told.
    headers = exc.headers if isinstance(exc, UpstreamStatusError) else None
    return _error(exc.status_code, provider_error(exc), headers)


def validation_response(errors: Sequence[Any], body: Any) -> Response:
    """400 naming the first bad parameter as OpenAI does (``messages[0].role``). pydantic's ``input`` is
    never echoed: it could hold a key or a whole conversation."""
    first = errors[0]
    param = body_param(first["loc"], body, missing=first["type"] == "missing")
    message = f"Invalid value for '{param}': {first['msg']}" if param else str(first["msg"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return _error(400, error_object(message, "invalid_request_error", param))


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
