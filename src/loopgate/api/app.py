"""The application factory: wires settings -> store -> providers -> service, and mounts /v4."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from loopgate import __version__, runtime
from loopgate.api.auth import organization
from loopgate.api.fastlane import ChatFastLane
from loopgate.api.responses import JSONBytes, install_error_handlers
from loopgate.api.routes import (
    chat,
    feedback,
    generation_variants,
    logs,
    model_configs,
    projects,
    sessions,
)
from loopgate.config import Settings
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.registry import ProviderRegistry
from loopgate.service.generation import GenerationService
from loopgate.service.model_config_registry import ModelConfigService
from loopgate.service.projects import ProjectService
from loopgate.store.catalog import Catalog
from loopgate.store.db import create_engine
from loopgate.store.repository import Store
from loopgate.store.writers import create_writer
from loopgate.ui.routes import router as ui_router

_log = logging.getLogger("loopgate")


def create_app(settings: Settings | None = None) -> ChatFastLane:
    settings = settings or Settings()
    # Routes and services reach the settings through app.state.settings.

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
        store = Store(engine, writer, cache_seconds=settings.auth_cache_seconds)
        app.state.store = store
        app.state.settings = settings
        catalog = Catalog.create(store, environments=settings.environment_names)
        app.state.generation = GenerationService(catalog, ProviderRegistry(settings, http))
        app.state.projects = ProjectService(catalog)
        app.state.model_configs = ModelConfigService(catalog)
        if not await store.has_api_keys():
            _log.warning("No API keys yet: create one with `loopgate keys create` (it prints the key).")
        runtime.tune()  # after everything is imported and built
        try:
            yield
        finally:
            await writer.stop()
            await http.close()
            await engine.dispose()

    app = FastAPI(title="loopgate", version=__version__, lifespan=lifespan, default_response_class=JSONBytes)
    install_error_handlers(app)
    v4 = APIRouter(prefix="/v4", dependencies=[Depends(organization)])
    for group in (chat, generation_variants, logs, feedback, sessions, projects, model_configs):
        v4.include_router(group.router)
    app.include_router(v4)
    app.include_router(ui_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return ChatFastLane(app)
