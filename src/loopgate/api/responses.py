"""JSON responses encoded with orjson, and the v4-shaped bodies of errors.

Starlette only: the fast lane answers with these before FastAPI is imported. The FastAPI exception
handlers that use them are installed in ``api/fastapi_app.py``.
"""

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from loopgate.errors import LoopgateError, StorageUnavailable, UpstreamStatusError
from loopgate.store.failures import unavailable

_log = logging.getLogger("loopgate.api")


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


_JSON_TYPE = (b"content-type", b"application/json")


class JSONAnswer:
    """A 200 JSON answer as two ASGI messages with prebuilt headers: what the hot routes send instead of a
    Starlette ``Response``, whose header handling cost them a few percent of a request's CPU."""

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.body = body
        self.headers = [(b"content-length", b"%d" % len(body)), _JSON_TYPE, *headers]

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def error_response(exc: LoopgateError) -> Response:
    # An upstream's Retry-After (and request id) reach the client, so it can back off as told.
    headers = exc.headers if isinstance(exc, UpstreamStatusError) else None
    return JSONBytes(exc.body(), status_code=exc.status_code, headers=headers)


def validation_response(errors: Sequence[Any], *, loc_prefix: tuple[str, ...] = ()) -> Response:
    """422 in v4's ``{loc, msg, type}`` shape. pydantic's ``input`` and ``ctx`` are dropped: ``input`` would
    echo request values -- provider keys included -- back into responses and any log of them."""
    detail = [{"loc": [*loc_prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONBytes({"detail": detail}, status_code=422)


def internal_error_response() -> Response:
    return JSONBytes({"detail": "Internal server error"}, status_code=500)


def storage_unavailable(exc: Exception, where: str) -> StorageUnavailable | None:
    """An error no route handles: a database that could not complete the request (a full disk, a lost
    connection) is returned for a 503 that says why; anything else is a bug, logged with its traceback
    for a 500 (None)."""
    failure = unavailable(exc, where)
    if failure is None:
        _log.error("unexpected error on %s", where, exc_info=exc)
    return failure


def unexpected_error_response(exc: Exception, where: str) -> Response:
    """v4's answer to an error no route handles: a 503 for a database that cannot take it, else a 500."""
    failure = storage_unavailable(exc, where)
    return internal_error_response() if failure is None else error_response(failure)
