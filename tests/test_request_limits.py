"""Request bodies over LOOPGATE_MAX_REQUEST_BYTES are refused with a 413 in the v4 shape, on the fast lane
(POST /v4/chat) and on every other route, whether the client declares the length or streams the body
chunked; nothing is logged for them and the server keeps serving."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LOOPGATE, Server, make_server, serving
from tests.helpers import MOCK_CONFIG, db_rows, log_body, unique

LIMIT = 4096


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(tmp_path_factory.mktemp("limits"), LOOPGATE_MAX_REQUEST_BYTES=str(LIMIT))
    with serving(server):
        yield server


def _chat(project: str, text: str) -> dict[str, Any]:
    return {"project": project, "model_config": MOCK_CONFIG, "messages": [{"role": "user", "content": text}]}


def _chunked(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 1000):  # no Content-Length: httpx sends it chunked
        yield body[start : start + 1000]


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "4,096 bytes" in detail and "LOOPGATE_MAX_REQUEST_BYTES" in detail


@pytest.mark.parametrize("path", ["/chat", "/logs"])
def test_a_body_over_the_limit_is_refused_declared_or_chunked(small: Server, path: str) -> None:
    project = unique("limits")
    body = _chat(project, "x" * LIMIT) if path == "/chat" else log_body(project, output="x" * LIMIT)
    encoded = httpx.Request("POST", "http://x", json=body).content
    assert len(encoded) > LIMIT
    with small.client() as client:
        _assert_413(client.post(path, content=encoded, headers={"content-type": "application/json"}))
        _assert_413(
            client.post(path, content=_chunked(encoded), headers={"content-type": "application/json"})
        )
        # The server still answers requests under the limit, on the same client; nothing was logged.
        small_body = _chat(project, "short") if path == "/chat" else log_body(project, output="short")
        assert client.post(path, json=small_body).status_code in (200, 201)
    # Only the small request left a log in its project: neither refused body was logged.
    query = "SELECT count(*) FROM logs JOIN projects ON projects.id = logs.project_id WHERE projects.name = ?"
    assert db_rows(small.database, query, project)[0][0] == 1


def test_the_limit_is_a_setting_with_a_floor(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    result = subprocess.run(
        [*LOOPGATE, "migrate"],
        env={**server.env, "LOOPGATE_MAX_REQUEST_BYTES": "10"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2 and "LOOPGATE_MAX_REQUEST_BYTES" in result.stderr


def test_the_openai_door_refuses_in_openais_shape(small: Server) -> None:
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "x" * LIMIT}]}
    encoded = httpx.Request("POST", "http://x", json=body).content
    headers = {"content-type": "application/json", "authorization": f"Bearer {small.api_key}"}
    with httpx.Client(base_url=small.base, timeout=30.0) as client:
        for content in (encoded, _chunked(encoded)):
            response = client.post("/v1/chat/completions", content=content, headers=headers)
            assert response.status_code == 413, response.text
            error = response.json()["error"]
            assert (
                error["type"] == "invalid_request_error" and "LOOPGATE_MAX_REQUEST_BYTES" in error["message"]
            )
        small_body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "short"}]}
        assert client.post("/v1/chat/completions", json=small_body, headers=headers).status_code == 200
