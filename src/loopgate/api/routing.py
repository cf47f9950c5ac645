"""The route class of every ``/v4`` FastAPI route: bodies parsed by orjson, no NUL character in a body, a
path parameter or a query parameter, and no integer outside 64 bits in a body (``api/bodies.py`` says
why), before the route reads any of them."""

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from loopgate.api.bodies import NUL_MESSAGE, JSONRequest, may_hold_nul, refuse_unstorable
from loopgate.errors import RequestInvalid


class V4Route(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            request = JSONRequest(request.scope, request.receive)
            for name, value in request.path_params.items():
                if isinstance(value, str) and "\x00" in value:
                    raise RequestInvalid(["path", name], NUL_MESSAGE)
            for name, value in request.query_params.multi_items():
                if "\x00" in name or "\x00" in value:
                    raise RequestInvalid(["query", name], NUL_MESSAGE)
            raw = await request.body()
            try:
                document = await request.json() if may_hold_nul(raw) else None
            except orjson.JSONDecodeError:
                pass  # the route answers it (422 json_invalid), or takes a body that is not JSON
            else:
                refuse_unstorable(raw, document)
            return await handle(request)

        return handler
