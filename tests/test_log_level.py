"""LOOPGATE_LOG_LEVEL (docs/configuration.md): uvicorn's names, in any case, for loopgate's own loggers as
well as uvicorn's; any other value stops the start with a message naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopgate import cli
from loopgate.config import Settings
from tests.conftest import make_server


def test_level_names(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("LOOPGATE_"):
            monkeypatch.delenv(name)
    assert Settings().log_level == "info"
    monkeypatch.setenv("LOOPGATE_LOG_LEVEL", "DEBUG")
    assert Settings().log_level == "debug"

    monkeypatch.setenv("LOOPGATE_LOG_LEVEL", "loud")
    assert cli.main(["migrate"]) == 2  # before, a KeyError traceback from uvicorn, and only for `serve`
    assert "LOOPGATE_LOG_LEVEL: Input should be 'critical', 'error'" in capsys.readouterr().err


def test_info_shows_loopgate_messages(tmp_path: Path) -> None:
    """At the default level the supervisor's "worker N started" lines are shown; they were dropped at any
    level, since only uvicorn's loggers were given it."""
    server = make_server(tmp_path, LOOPGATE_LOG_LEVEL="info")
    server.start("--workers", "2")
    server.stop()
    assert server.log_path is not None
    log = server.log_path.read_text()
    assert "worker 0 started" in log and "worker 1 started" in log


def test_requests_with_bodies_leave_no_python_warnings_in_the_log(tmp_path: Path) -> None:
    """pydantic warned once per body-taking route, on its first request, of an alias FastAPI uses itself
    (pydantic#12356): noise in every server's log that looked like a fault."""
    server = make_server(tmp_path, LOOPGATE_LOG_LEVEL="info")
    server.start()
    try:
        with server.client() as client:
            registered = client.post(
                "/model-configs", json={"project": "quiet", "provider": "mock", "model": "m"}
            )
            assert registered.status_code == 200, registered.text
            evaluator = {"name": "e", "description": "", "arguments_type": "target_free", "type": "external"}
            assert client.post("/evaluators", json={**evaluator, "return_type": "boolean"}).status_code == 201
            assert client.post("/projects", json={"name": "quiet too"}).status_code in (200, 201)
    finally:
        server.stop()
    assert server.log_path is not None
    log = server.log_path.read_text()
    assert "Application startup complete" in log and "Warning" not in log
