"""The fast lane: ``POST /v4/chat`` served straight from ASGI.

Every generation pays for the web framework's routing, middleware stack, dependency injection and
stdlib-JSON body parsing; profiles put that at a third of a request's CPU. This route is the hot path, so
it skips them: the body is validated by pydantic directly from bytes, the key is checked by the same
``authenticate`` the other routes use, and errors get the same bodies. Every other path goes on to FastAPI.
"""

import logging

import orjson
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from loopgate.api.auth import authenticate
from loopgate.api.responses import JSONBytes, error_response, validation_response
from loopgate.api.routes.chat import respond
from loopgate.errors import LoopgateError
from loopgate.schemas.chat import ChatRequest

_log = logging.getLogger("loopgate.api")
_PATH = "/v4/chat"
_JSON = (b"content-type", b"application/json")


class ChatFastLane:
    def __init__(self, app: FastAPI) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != _PATH or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its request
        key = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"x-api-key"), None
        )
        state = self._app.state
        try:
            org_id = await authenticate(state.store, key)
            request = ChatRequest.model_validate_json(body)
            if not request.stream:
                # The common case, sent without a Response object: two sends with prebuilt headers.
                answer = orjson.dumps(await state.generation.chat(org_id, request))
                headers = [(b"content-length", str(len(answer)).encode()), _JSON]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
                return
            response = await respond(state.generation, org_id, request)
        except LoopgateError as exc:
            response = error_response(exc)
        except ValidationError as exc:
            response = validation_response(exc.errors(), loc_prefix=("body",))
        except Exception:
            _log.exception("unexpected error on POST %s", _PATH)
            response = JSONBytes({"detail": "Internal server error"}, status_code=500)
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
