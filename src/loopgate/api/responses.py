"""JSON responses encoded with orjson, and the handlers that turn errors into v4-shaped bodies."""

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from loopgate.errors import LoopgateError, UpstreamStatusError


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: LoopgateError) -> Response:
    # An upstream's Retry-After (and request id) reach the client, so it can back off as told.
    headers = exc.headers if isinstance(exc, UpstreamStatusError) else None
    return JSONBytes(exc.body(), status_code=exc.status_code, headers=headers)


def validation_response(errors: Sequence[Any], *, loc_prefix: tuple[str, ...] = ()) -> Response:
    """422 in v4's ``{loc, msg, type}`` shape. pydantic's ``input`` and ``ctx`` are dropped: ``input`` would
    echo request values -- provider keys included -- back into responses and any log of them."""
    detail = [{"loc": [*loc_prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONBytes({"detail": detail}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    async def loopgate_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoopgateError)
        return error_response(exc)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc.errors())

    app.add_exception_handler(LoopgateError, loopgate_error)
    app.add_exception_handler(RequestValidationError, validation_error)
