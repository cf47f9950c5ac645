"""The application uvicorn runs: wires settings -> store -> providers -> services, answers the hot route
itself and builds the rest of the HTTP surface after start-up.

Importing FastAPI and building its routes (a pydantic model per route, the OpenAPI models, the log
browser) took about half of the time from ``loopgate serve`` to the first answer, and ``POST /v4/chat``
needs none of it. So this module and what it imports stay free of FastAPI (tests/test_startup.py checks):
``LoopgateApp`` runs the lifespan, serves ``POST /v4/chat`` (``api/fastlane.py``) and ``GET /healthz``
directly, and starts building the FastAPI application (``api/fastapi_app.py``) in a thread once the
services are up. Any other request waits for that build, then goes to it.
"""

import asyncio
import logging
import re
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopgate import metrics, runtime
from loopgate.api import fastlane
from loopgate.api.responses import (
    JSONAnswer,
    error_response,
    internal_error_response,
    unexpected_error_response,
)
from loopgate.config import Settings
from loopgate.errors import RequestTooLarge, StorageUnavailable
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.registry import ProviderRegistry
from loopgate.service.evaluation_runner import EvaluationRunner
from loopgate.service.generation import GenerationService
from loopgate.store.catalog import Catalog
from loopgate.store.db import create_engine
from loopgate.store.repository import Store
from loopgate.store.writers import create_writer

if TYPE_CHECKING:
    from loopgate.service.otlp_export import OtlpExporter

_log = logging.getLogger("loopgate")
_HEALTH_PATH = "/healthz"
_READY_PATH = "/readyz"
_READY_TIMEOUT = 2.0  # seconds: a probe that waits longer than this has its own timeout to hit
_READY_BODY = b'{"status":"ready"}'
_OPENAI_CHAT_PATH = "/v1/chat/completions"  # api/openai_lane.py, imported on its first request
_BUILD_DELAY = 1.0  # seconds after start-up
_HEALTH_BODY = b'{"status":"ok"}'
_HEALTH_HEADERS = [(b"content-length", b"%d" % len(_HEALTH_BODY)), (b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class Services:
    """What start-up builds: the fast lane uses the store and the generation service; the FastAPI app gets
    them all (as ``app.state.*``) and builds the services only its routes use from ``catalog``."""

    settings: Settings
    store: Store
    catalog: Catalog
    generation: GenerationService
    evaluations: EvaluationRunner  # runs the evaluations loopgate generates (hl_generated=true)


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or Settings()
    app = LoopgateApp(settings)
    if settings.metrics_token is None:
        return app  # nothing counted: not even the check whether to count, on the hot path
    metrics.enable()
    return CountedRequests(app)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """The services for the life of the server; the writer, the HTTP client and the engine stop on exit."""
    engine = create_engine(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    writer = create_writer(
        engine,
        settings.database_url,
        max_batch=settings.writer_max_batch,
        synchronous=settings.sqlite_synchronous,
    )
    await writer.start()
    http = UpstreamHTTP(
        connect_timeout=settings.provider_connect_timeout,
        total_timeout=settings.provider_timeout,
        timeouts=settings.timeouts,
    )
    exporter = await _start_exporter(engine, settings)
    runner: EvaluationRunner | None = None
    try:
        store = Store(engine, writer, cache_seconds=settings.auth_cache_seconds)
        catalog = Catalog.create(store, environments=settings.environment_names)
        providers = ProviderRegistry(settings, http)
        generation = GenerationService(catalog, providers)
        runner = EvaluationRunner(catalog, generation, providers, runs_code=settings.python_evaluators)
        runner.start()
        if not await store.has_api_keys():
            _log.warning("No API keys yet: create one with `loopgate keys create` (it prints the key).")
        yield Services(
            settings=settings, store=store, catalog=catalog, generation=generation, evaluations=runner
        )
    finally:
        if runner is not None:  # before the writer: a run's last logs are committed first
            await runner.stop()
        await writer.stop()
        if exporter is not None:  # after the writer: the last logs are committed, so they can be sent
            await exporter.stop()
        await http.close()
        await engine.dispose()


async def _start_exporter(engine: AsyncEngine, settings: Settings) -> "OtlpExporter | None":
    """The OTLP exporter, only when an endpoint is configured: imported here, so a server without one
    never loads it (tests/test_startup.py)."""
    if settings.otlp_traces_url is None:
        return None
    from loopgate.service.otlp_export import OtlpExporter

    exporter = OtlpExporter(engine, settings)
    await exporter.start()
    return exporter


class LoopgateApp:
    """The ASGI app: lifespan, ``POST /v4/chat``, ``GET /healthz``; everything else goes to the FastAPI
    application once it is built (requests that come earlier wait for it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._chat: fastlane.ChatFastLane | None = None
        self._services: Services | None = None
        self._full_app: asyncio.Future[ASGIApp] | None = None
        self._openai: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and self._chat is not None:
            if scope["path"] == fastlane.PATH and scope["method"] == "POST":
                await self._chat(scope, receive, send)
                if self._full_app is None:
                    self._start_build()  # the first chat has been answered: now the rest can be built
                return
            if scope["path"] == _OPENAI_CHAT_PATH and scope["method"] == "POST":
                await self._openai_lane()(scope, receive, send)
                return
            if scope["path"] == _HEALTH_PATH and scope["method"] == "GET":
                await send({"type": "http.response.start", "status": 200, "headers": _HEALTH_HEADERS})
                await send({"type": "http.response.body", "body": _HEALTH_BODY})
                return
            if scope["path"] == _READY_PATH and scope["method"] == "GET":
                await self._readiness(scope, receive, send)
                return
        await self._forward(scope, receive, send)

    async def _readiness(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /readyz``, for a load balancer's or an orchestrator's readiness probe: 200 once the database
        answers a query, else the 503 a request would get, saying why. ``/healthz`` says only that the
        process serves, so a restart cannot cure what ``/readyz`` reports."""
        assert self._services is not None  # set with self._chat, which the caller checked
        response: ASGIApp = JSONAnswer(_READY_BODY)
        try:
            async with asyncio.timeout(_READY_TIMEOUT):
                await self._services.store.ping()
        except TimeoutError:
            response = error_response(StorageUnavailable.database(f"no answer within {_READY_TIMEOUT:g} s"))
        except Exception as exc:
            response = unexpected_error_response(exc, f"GET {_READY_PATH}")
        await response(scope, receive, send)

    def _openai_lane(self) -> ASGIApp:
        """The OpenAI-compatible door's chat route, built on its first request: its schemas and services
        are not imported at start-up (``POST /v4/chat`` answers first; tests/test_startup.py)."""
        if self._openai is None:
            from loopgate.api.openai_lane import OpenAIChatLane
            from loopgate.service.openai_compat import OpenAIDoor

            services = self._services
            assert services is not None  # set with self._chat, which the caller checked
            door = OpenAIDoor(services.generation, services.store, services.settings)
            self._openai = OpenAIChatLane(services.store, door, max_body=self.settings.max_request_bytes)
        return self._openai

    def _start_build(self) -> asyncio.Future[ASGIApp]:
        """The FastAPI build, started by the first request that needs it, after the first chat has been
        answered, or ``_BUILD_DELAY`` seconds after start-up, whichever comes first. Started at once, it
        took the CPU from the first chat (answered in ~60-170 ms instead of ~15 ms); started only after a
        delay, it landed in the middle of whatever traffic had begun by then."""
        if self._full_app is None:
            if self._services is None:
                raise RuntimeError("request before the lifespan started: the services are built at start-up")
            loop = asyncio.get_running_loop()
            self._full_app = loop.run_in_executor(None, _build_full_app, self._services)
        return self._full_app

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = _merge_slashes(scope)
            if scope["path"] == _OPENAI_CHAT_PATH and scope["method"] == "POST" and self._chat is not None:
                await self._openai_lane()(scope, receive, send)  # FastAPI has no route for it
                return
        build = self._start_build()
        try:
            # shield: a cancelled request must not cancel the build that other requests are waiting for.
            app = await asyncio.shield(build)
        except Exception:
            # Logged once where the build failed; each request it cannot serve gets a 500, not a hang.
            if scope["type"] == "http":
                await internal_error_response()(scope, receive, send)
            return
        if scope["type"] == "http" and _declared_length(scope) > self.settings.max_request_bytes:
            # Refused before FastAPI sees it: its body limit (max_body_size, which also bounds chunked
            # bodies) answers a declared length in plain text, and v4 clients parse errors as JSON.
            await error_response(RequestTooLarge(self.settings.max_request_bytes))(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        except Exception:
            # Already answered and logged (fastapi_app.install_error_handlers); Starlette raises it again
            # after answering, and uvicorn would log the traceback a second time and drop the connection.
            if scope["type"] != "http":
                raise

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # The ASGI lifespan protocol, as Starlette's router speaks it: failures are reported, then raised.
        await receive()  # lifespan.startup
        started = False
        try:
            async with open_services(self.settings) as services:
                self._chat = fastlane.ChatFastLane(
                    services.store, services.generation, max_body=self.settings.max_request_bytes
                )
                runtime.tune()  # after everything the fast lane needs is imported and built
                self._services = services
                timer = asyncio.get_running_loop().call_later(_BUILD_DELAY, self._start_build)
                sharing = asyncio.create_task(metrics.share_periodically()) if metrics.sharing() else None
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
                timer.cancel()
                if sharing is not None:
                    sharing.cancel()
        except BaseException:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": traceback.format_exc()})
            raise
        await send({"type": "lifespan.shutdown.complete"})


class CountedRequests:
    """``LoopgateApp`` with every HTTP request counted for ``/metrics``: method, route template (the path
    itself for the routes ``LoopgateApp`` answers without FastAPI), status and duration."""

    _OWN_ROUTES = frozenset((fastlane.PATH, _OPENAI_CHAT_PATH, _HEALTH_PATH, _READY_PATH))

    def __init__(self, app: LoopgateApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = "none"  # the client left before any answer began

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        except BaseException:
            if status == "none":
                status = "500"  # what uvicorn answers for it
            raise
        finally:
            route = scope["path"] if scope["path"] in self._OWN_ROUTES else _route_template(scope)
            metrics.http_request(scope["method"], route, status, time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The template of the route that answered, prefixes included (``/v4/projects/{id}``). FastAPI keeps an
    included router's routes without its prefix, so the prefix is what the path holds before the route's
    own part, rebuilt from the path parameters; "unmatched" when no route answered (a 404)."""
    template = getattr(scope.get("route"), "path_format", None)
    if not isinstance(template, str):
        return "unmatched"
    try:
        own_part = template.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope["path"]
    return path[: len(path) - len(own_part)] + template if path.endswith(own_part) else template


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0  # uvicorn refuses a malformed one itself
    return 0


def _merge_slashes(scope: Scope) -> Scope:
    """The request with runs of ``/`` in its path made one, as nginx does by default. TypeScript SDK 0.5.x
    appends each path to ``basePath`` as given, so ``http://host:8000/v4/`` asked for ``/v4//projects``
    (404); the Python SDK strips that slash itself. Only paths that missed the fast lane come here, so
    ``/v4//chat`` is served by the FastAPI route of ``/v4/chat``."""
    path = re.sub("/{2,}", "/", scope["path"])
    raw = scope.get("raw_path")
    return {**scope, "path": path, "raw_path": re.sub(b"/{2,}", b"/", raw) if raw else raw}


def _build_full_app(services: Services) -> ASGIApp:
    """Runs in a worker thread: the imports and route building happen off the event loop."""
    try:
        from loopgate.api.fastapi_app import build_fastapi_app

        app = build_fastapi_app(services)
    except Exception:
        _log.exception("building the FastAPI application failed: only POST /v4/chat and /healthz will work")
        raise
    # Again, for what the build imported: left unfrozen, its ~34,000 objects made every full collection
    # take ~30 ms (0 ms once frozen); the collection before the freeze costs ~30 ms once, here.
    runtime.tune()
    return app
