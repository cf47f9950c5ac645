"""JSON responses encoded with orjson, and the handlers that turn errors into v4-shaped bodies."""

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


def install_error_handlers(app: FastAPI) -> None:
    async def loopgate_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoopgateError)
        # An upstream's Retry-After (and request id) reach the client, so it can back off as told.
        headers = exc.headers if isinstance(exc, UpstreamStatusError) else None
        return JSONBytes(exc.body(), status_code=exc.status_code, headers=headers)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # v4's shape is {loc, msg, type}. pydantic's "input" and "ctx" are dropped: "input" would echo
        # request values -- provider keys included -- back into responses and any log of them.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONBytes({"detail": detail}, status_code=422)

    app.add_exception_handler(LoopgateError, loopgate_error)
    app.add_exception_handler(RequestValidationError, validation_error)
