"""An error no /v4 route handles is answered in v4's shape -- a JSON 500, or the 503 of a database that
cannot answer -- logged once with its traceback, and the connection is kept (Starlette raises the error
again after answering; the app lets it go rather than have uvicorn log it twice and drop the connection)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import httpx
import pytest
from fastapi import FastAPI

from loopgate.api.app import LoopgateApp
from loopgate.api.fastapi_app import install_error_handlers
from loopgate.config import Settings


def _gateway() -> LoopgateApp:
    app = FastAPI()
    install_error_handlers(app, max_request_bytes=1_000)

    @app.get("/v4/bug")
    async def bug() -> None:
        raise KeyError("model")

    @app.get("/v4/disk-full")
    async def disk_full() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    gateway = LoopgateApp(Settings())
    built: asyncio.Future[FastAPI] = asyncio.get_running_loop().create_future()
    built.set_result(app)
    gateway._full_app = built  # as if built after start-up  # type: ignore[assignment]
    return gateway


async def test_an_unexpected_error_is_v4s_json_500_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    # ASGITransport re-raises what the app raises: the request below would fail if the error escaped.
    transport = httpx.ASGITransport(app=_gateway())
    async with httpx.AsyncClient(transport=transport, base_url="http://loopgate") as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/v4/bug")
        assert response.status_code == 500 and response.json() == {"detail": "Internal server error"}
        assert caplog.text.count("unexpected error on GET /v4/bug") == 1
        assert "KeyError: 'model'" in caplog.text
        full = await client.get("/v4/disk-full")
        assert full.status_code == 503 and "disk is full" in full.json()["detail"]
