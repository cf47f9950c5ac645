"""Start-up: ``POST /v4/chat`` (and ``POST /v1/chat/completions``) are served before FastAPI is imported;
the rest waits for the FastAPI app.

``loopgate serve`` answers the hot route (and /healthz) from ``api/app.py`` and builds the FastAPI
application in a thread after start-up. These tests hold or break that build in a real server process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, make_server, wait_for_http
from tests.helpers import chat_body, unique

# `loopgate serve` with the FastAPI build wrapped by BODY (indented into `wrapped(services)`).
_SERVE_WITH_WRAPPED_BUILD = """
import pathlib, sys, time
from loopgate import cli
from loopgate.api import fastapi_app

build = fastapi_app.build_fastapi_app

def wrapped(services):
{body}

fastapi_app.build_fastapi_app = wrapped
sys.exit(cli.main(["serve", "--port", sys.argv[1]]))
"""

_HOLD_UNTIL_RELEASED = """
    release = pathlib.Path(sys.argv[2])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return build(services)
"""

_MARK_STARTED = """
    pathlib.Path(sys.argv[2]).touch()
    return build(services)
"""

_FAIL = """
    raise RuntimeError("the build breaks on purpose")
"""


@pytest.fixture
def unstarted(tmp_path: Path) -> Iterator[Server]:
    server = make_server(tmp_path)
    yield server
    server.stop()


def _start_with_build(server: Server, body: str, *args: str) -> None:
    assert server.log_path is not None
    script = _SERVE_WITH_WRAPPED_BUILD.format(body=body)
    with server.log_path.open("ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-c", script, str(server.port), *args],
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_http(f"{server.base}/healthz", timeout=60, process=server.process)


def test_the_served_app_and_the_cli_do_not_import_fastapi_or_postgresql() -> None:
    """What uvicorn loads before it can answer: the CLI, uvicorn, and the app factory's module. On SQLite
    (the default here) that leaves out the PostgreSQL dialect too, ~40 ms of imports, and without an OTLP
    endpoint the exporter."""
    code = (
        "import sys, loopgate.cli, uvicorn, loopgate.api.app as app\n"
        "app.create_app()\n"
        "late = ('fastapi', 'loopgate.ui', 'loopgate.api.routes', 'loopgate.api.fastapi_app',\n"
        "        'loopgate.api.openai_lane', 'loopgate.service.openai_compat',\n"
        "        'sqlalchemy.dialects.postgresql', 'asyncpg',\n"
        "        'loopgate.service.otlp', 'loopgate.store.exports')\n"
        "print(sorted(name for name in sys.modules if name == late[0] or name.startswith(late)))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LOOPGATE_", "OTEL_"))}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_chat_is_served_while_the_fastapi_app_is_built_and_other_paths_wait(
    unstarted: Server, tmp_path: Path
) -> None:
    release = tmp_path / "release-the-build"
    _start_with_build(unstarted, _HOLD_UNTIL_RELEASED, str(release))
    with unstarted.client() as http:
        answered = http.post("/chat", json=chat_body(unique("startup")))
        assert answered.status_code == 200, answered.text
        # The OpenAI-compatible door's chat is served without FastAPI too (api/openai_lane.py).
        door = httpx.post(
            f"{unstarted.base}/v1/chat/completions",
            json={"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {unstarted.api_key}"},
            timeout=10,
        )
        assert door.status_code == 200, door.text

        waiting: list[httpx.Response] = []
        request = threading.Thread(target=lambda: waiting.append(http.get("/projects")))
        request.start()
        time.sleep(0.5)
        assert request.is_alive(), "GET /v4/projects was answered before the FastAPI app existed"
        release.touch()
        request.join(timeout=30)
        assert [response.status_code for response in waiting] == [200]

        schema = httpx.get(f"{unstarted.base}/openapi.json", timeout=10).json()
        assert "/v4/chat" in schema["paths"]


def test_the_build_starts_by_itself_when_no_request_asks_for_it(unstarted: Server, tmp_path: Path) -> None:
    started = tmp_path / "build-started"
    _start_with_build(unstarted, _MARK_STARTED, str(started))  # and then no request at all
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()


def test_a_failed_build_is_logged_and_answers_500_not_a_hang(unstarted: Server) -> None:
    _start_with_build(unstarted, _FAIL)
    with unstarted.client() as http:
        assert http.post("/chat", json=chat_body(unique("startup"))).status_code == 200
        broken = http.get("/projects", timeout=10)
    assert broken.status_code == 500
    assert broken.json() == {"detail": "Internal server error"}
    assert unstarted.log_path is not None
    log = unstarted.log_path.read_text()
    assert "building the FastAPI application failed" in log
    assert "the build breaks on purpose" in log


def test_the_first_request_to_a_plain_serve_is_answered(unstarted: Server) -> None:
    """No chat first: a request to a FastAPI route right after /healthz answers waits for the build."""
    unstarted.start()
    with unstarted.client() as http:
        assert http.get("/projects").status_code == 200


def test_sigterm_runs_the_shutdown_once(tmp_path: Path) -> None:
    server = make_server(tmp_path, LOOPGATE_LOG_LEVEL="info")
    server.start()
    with server.client() as http:
        assert http.get("/projects").status_code == 200
    server.stop()
    assert server.log_path is not None
    log = server.log_path.read_text()
    assert log.count("Application shutdown complete") == 1
    assert "Traceback" not in log
