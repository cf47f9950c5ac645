"""The FastAPI application: every /v4 route, the OpenAI-compatible door at /v1, the log browser at /ui,
the error handlers and the OpenAPI schema. ``api/app.py`` builds it once per process, in a thread, after
start-up, and forwards to it every request the fast lane does not answer. Its routes reach the shared
services through ``request.app.state``.
"""

import hmac
import sqlite3
import warnings
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic.warnings import UnsupportedFieldAttributeWarning
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from loopgate import __version__, metrics
from loopgate.api.app import Services
from loopgate.api.auth import organization
from loopgate.api.responses import (
    JSONBytes,
    error_response,
    unexpected_error_response,
    validation_response,
)
from loopgate.api.routes import (
    chat,
    datasets,
    evaluations,
    evaluators,
    feedback,
    generation_variants,
    logs,
    model_configs,
    openai_compat,
    projects,
    sessions,
)
from loopgate.errors import AuthenticationError, LoopgateError, RequestTooLarge
from loopgate.service.datasets import DatasetService
from loopgate.service.evaluations import EvaluationService
from loopgate.service.evaluators import EvaluatorService
from loopgate.service.model_config_registry import ModelConfigService
from loopgate.service.openai_compat import OpenAIDoor
from loopgate.service.projects import ProjectService
from loopgate.ui.routes import router as ui_router


def build_fastapi_app(services: Services) -> FastAPI:
    # FastAPI hands pydantic each body parameter as a field named by its alias (``body``); pydantic >= 2.12
    # warns that an alias there has no effect (pydantic#12356, a false positive: FastAPI reads the alias
    # itself), once per route on its first request, into the server's log.
    warnings.filterwarnings(
        "ignore", "The 'alias' attribute with value 'body'", UnsupportedFieldAttributeWarning
    )
    limit = services.settings.max_request_bytes
    app = FastAPI(
        title="loopgate", version=__version__, default_response_class=JSONBytes, max_body_size=limit
    )
    app.state.settings = services.settings
    app.state.store = services.store
    app.state.generation = services.generation
    app.state.projects = ProjectService(services.catalog)
    app.state.model_configs = ModelConfigService(services.catalog)
    app.state.datasets = DatasetService(services.catalog)
    app.state.evaluators = EvaluatorService(services.catalog)
    app.state.evaluations = EvaluationService(services.catalog, services.store, services.evaluations)
    app.state.openai_door = OpenAIDoor(services.generation, services.store, services.settings)
    install_error_handlers(app, max_request_bytes=limit)
    v4 = APIRouter(prefix="/v4", dependencies=[Depends(organization)])
    groups = (
        chat,
        generation_variants,
        logs,
        feedback,
        sessions,
        projects,
        model_configs,
        datasets,
        evaluators,
        evaluations,
    )
    for group in groups:
        v4.include_router(group.router)
    app.include_router(v4)
    # /v1: the OpenAI-compatible door, authenticated and answering errors in OpenAI's shape by itself.
    app.include_router(openai_compat.router)
    app.include_router(ui_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    token = services.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token}".encode()

        @app.get("/metrics", include_in_schema=False)
        async def prometheus_metrics(authorization: Annotated[str, Header()] = "") -> Response:
            if not hmac.compare_digest(authorization.encode(), expected):
                raise AuthenticationError("/metrics needs Authorization: Bearer <LOOPGATE_METRICS_TOKEN>")
            return Response(metrics.render(metrics.gather()), media_type=metrics.CONTENT_TYPE)

    return app


def install_error_handlers(app: FastAPI, *, max_request_bytes: int) -> None:
    async def loopgate_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoopgateError)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        # FastAPI's body limit (max_body_size) says only "Content Too Large"; the fast lane's 413 names
        # the limit and the variable that sets it, and this one says the same.
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 413:
            return error_response(RequestTooLarge(max_request_bytes))
        return await http_exception_handler(request, exc)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc.errors())

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # Errors no route handles reach Starlette's plain-text 500 otherwise: a database that cannot take
        # the request (a full disk) is a 503 that says why, anything else v4's JSON 500, logged with its
        # traceback. (Starlette raises the exception again after this answer: api/app.py lets it go.)
        return unexpected_error_response(exc, f"{request.method} {request.url.path}")

    app.add_exception_handler(LoopgateError, loopgate_error)
    app.add_exception_handler(DBAPIError, unexpected_error)
    app.add_exception_handler(sqlite3.OperationalError, unexpected_error)
    app.add_exception_handler(Exception, unexpected_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
