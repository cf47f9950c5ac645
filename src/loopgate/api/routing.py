"""The route class of every ``/v4`` FastAPI route: bodies parsed by orjson (``api/bodies.py`` says why)."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from loopgate.api.bodies import JSONRequest


class V4Route(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await handle(JSONRequest(request.scope, request.receive))

        return handler
