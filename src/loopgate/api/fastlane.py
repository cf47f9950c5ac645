"""The fast lane: ``POST /v4/chat`` served straight from ASGI.

Every generation pays for the web framework's routing, middleware stack, dependency injection and
stdlib-JSON body parsing; profiles put that at a third of a request's CPU. This route is the hot path, so
it skips them: the body is validated by pydantic directly from bytes, the key is checked by the same
``authenticate`` the other routes use, and errors get the same bodies. ``api/app.py`` sends every other
path on to FastAPI. Nothing here imports FastAPI, so this route answers before FastAPI is even loaded.
"""

import logging

import orjson
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from loopgate.api.bodies import may_hold_nul, refuse_unstorable
from loopgate.api.keys import authenticate
from loopgate.api.responses import (
    JSONAnswer,
    JSONBytes,
    error_response,
    unexpected_error_response,
    validation_response,
)
from loopgate.api.sse import SSEResponse
from loopgate.errors import LoopgateError, RequestTooLarge
from loopgate.schemas.chat import ChatRequest
from loopgate.service.generation import GenerationService
from loopgate.store.repository import Store

_log = logging.getLogger("loopgate.api")
PATH = "/v4/chat"


async def respond(service: GenerationService, org_id: str, body: ChatRequest) -> Response:
    """The answer to a valid chat request: JSON, or server-sent events when ``stream`` is set."""
    if body.stream:
        return SSEResponse(await service.chat_stream(org_id, body))
    return JSONBytes(await service.chat(org_id, body))


class ChatFastLane:
    """An ASGI app for ``POST /v4/chat`` requests only (the caller routes them here)."""

    def __init__(self, store: Store, generation: GenerationService, *, max_body: int) -> None:
        self._store = store
        self._generation = generation
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, self._max_body)
        if body is None:
            return  # the client left before sending its request
        if body is TOO_LARGE:
            await error_response(RequestTooLarge(self._max_body))(scope, receive, send)
            return
        key = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"x-api-key"), None
        )
        try:
            org_id = await authenticate(self._store, key)
            request = ChatRequest.model_validate_json(body)
            refuse_unstorable(body, orjson.loads(body) if may_hold_nul(body) else None)
            if not request.stream:
                # The common case, sent without a Response object: two sends with prebuilt headers.
                await JSONAnswer(orjson.dumps(await self._generation.chat(org_id, request)))(
                    scope, receive, send
                )
                return
            response = await respond(self._generation, org_id, request)
        except LoopgateError as exc:
            response = error_response(exc)
        except ValidationError as exc:
            response = validation_response(exc.errors(), loc_prefix=("body",))
        except Exception as exc:
            response = unexpected_error_response(exc, f"POST {PATH}")
        await response(scope, receive, send)


TOO_LARGE = b"\x00too large"  # a marker, compared by identity; never a body


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, ``None`` if the client left, or ``TOO_LARGE`` once more than ``limit`` bytes came: it is
    buffered whole before it is parsed, so without the bound one request could take all memory. (The
    FastAPI routes have the same bound through FastAPI's ``max_body_size``.)"""
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            return TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
