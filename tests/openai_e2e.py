"""Shared by the OpenAI adapter's end-to-end modules (``test_openai_fakellm.py``, against fakellm, and
``test_openai_own_upstream.py``, against a scripted upstream of our own): request bodies, reading a
server's database, and starting several servers on one upstream."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopgate.store import content

from .conftest import Server, make_server

# Sent as provider_api_keys.openai on every request of these modules; it must never reach the database.
SECRET_KEY = f"sk-loopgate-test-{uuid.uuid4().hex}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def chat_body(project: str, text: str, *, key: str | None = SECRET_KEY, **extra: Any) -> dict[str, Any]:
    config = {"provider": "openai", "model": "gpt-4o", **extra.pop("model_config", {})}
    body: dict[str, Any] = {
        "project": project,
        "model_config": config,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    if key is not None:
        body["provider_api_keys"] = {"openai": key}
    return body


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def rows(database: Path, query: str, *params: Any) -> list[sqlite3.Row]:
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(query, params).fetchall()
    finally:
        connection.close()


def project_logs(database: Path, project: str) -> list[sqlite3.Row]:
    return rows(
        database,
        "SELECT logs.* FROM logs JOIN projects ON logs.project_id = projects.id "
        "WHERE projects.name = ? ORDER BY logs.created_at, logs.sample_index",
        project,
    )


def eventual_logs(database: Path, project: str, count: int = 1) -> list[sqlite3.Row]:
    """For a stream that failed after its 200: the error event goes out before its log is committed
    (service/streaming.py queues that write without waiting), so the row may land a moment later."""
    deadline = time.monotonic() + 5
    while len(found := project_logs(database, project)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def payload(database: Path, row: sqlite3.Row) -> dict[str, Any]:
    """A log's payload document with its blob references expanded."""
    blobs = {r["hash"]: r["data"] for r in rows(database, "SELECT hash, data FROM blobs")}
    document: dict[str, Any] = content.expand(json.loads(row["payload"]), blobs)
    return document


def by_index(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        assert len(event["data"]) == 1, "each SSE event carries exactly one sample"
        grouped.setdefault(event["data"][0]["index"], []).append(event)
    return grouped


def assert_provider_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "detail": {"type": error_type, "message": message, "code": status, "origin": "OpenAI"}
    }


@contextlib.contextmanager
def loopgates(
    factory: pytest.TempPathFactory, base_url: str, names: list[str], **env: str
) -> Iterator[dict[str, Server]]:
    """Several loopgate servers on one upstream, started in parallel (each start is seconds of subprocess
    work). A server used by one test only starts with an adapter that has learnt nothing of its upstream.
    Retries are off: these tests count upstream calls per request (tests/test_retries.py tests retrying)."""
    env = {"LOOPGATE_PROVIDER_MAX_RETRIES": "0", **env}

    def start(name: str) -> Server:
        server = make_server(factory.mktemp(f"loopgate-{name}"), LOOPGATE_OPENAI_BASE_URL=base_url, **env)
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        return server

    with ThreadPoolExecutor(len(names)) as pool:
        futures = {name: pool.submit(start, name) for name in names}
        wait(futures.values())
    started = {name: f.result() for name, f in futures.items() if f.exception() is None}
    try:
        for future in futures.values():
            future.result()  # re-raise the first failure, after which every started server is stopped
        yield started
    finally:
        for server in started.values():
            server.stop()
