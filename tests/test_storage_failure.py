"""A database that cannot take writes (a full disk): no generation goes out without its log.

The server's processes get a file-size limit of one byte (``helpers.disk_full``), so every write that
grows the WAL fails as it would on a full disk. Requests are then refused with a 503 that says why -- on
``/v4/chat``, a stream, the OpenAI door and ``POST /logs`` -- nothing of them is stored, and the server
takes writes again as soon as the limit is lifted. On one process with its writer thread, and on two
workers with the writer process. On PostgreSQL, a server that goes down is the same 503, and loopgate
reconnects once it is back.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, free_port, make_server
from tests.helpers import chat_body, db_rows, disk_full, log_body, process_tree, sse_events, unique
from tests.postgres import PostgresCluster


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-workers"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    instance = make_server(tmp_path)
    instance.start("--workers", request.param)
    yield instance
    instance.stop()


def _refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 503, response.text
    message: str = response.json()["detail"]
    assert all(word in message for word in words), message
    # The database's own reason, not that of a ROLLBACK after a COMMIT that had rolled back already.
    reasons = ("disk I/O error", "disk is full", "cannot reach the database")
    assert any(reason in message for reason in reasons), message
    assert "127.0.0.1" not in message and "Errno" not in message  # no host, port or socket error leaks


def _project_logs(server: Server, project: str) -> list[Any]:
    query = "SELECT l.id, l.status FROM logs l JOIN projects p ON p.id = l.project_id WHERE p.name = ?"
    return db_rows(server.database, query, project)


def test_a_full_disk_refuses_requests_with_a_503_and_stores_nothing(server: Server) -> None:
    project = unique("full-disk")
    with server.client() as client:
        first = client.post("/chat", json=chat_body(project, "before"))
        assert first.status_code == 200, first.text
        ready = httpx.get(f"{server.base}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert server.process is not None
        with disk_full(server.process.pid):
            for _ in range(3):  # the failure must not stick to the writer: each request is refused alike
                chat = client.post("/chat", json=chat_body(project, "while full"))
                _refused(chat, "The log could not be stored", "the generation is not returned")
            # A log posted as is: its model config is new, and writing it is what fails first.
            _refused(client.post("/logs", json=log_body(project, output="while full")), "retry")

            stream = client.post("/chat", json=chat_body(project, "streamed while full", stream=True))
            assert stream.status_code == 200  # the deltas went out before the commit was tried
            events = sse_events(stream.text)
            assert any(event.get("data") for event in events)
            assert "could not be stored" in events[-1]["detail"]
            assert not any(item.get("finish_reason") for e in events for item in e.get("data") or [])

            door = httpx.post(
                f"{server.base}/v1/chat/completions",
                headers={"Authorization": f"Bearer {server.api_key}", "X-Loopgate-Project": project},
                json={"model": "mock/mock-1", "messages": [{"role": "user", "content": "door while full"}]},
            )
            assert door.status_code == 503, door.text
            assert door.json()["error"]["type"] == "server_error"
            assert "could not be stored" in door.json()["error"]["message"]
        after = client.post("/chat", json=chat_body(project, "after"))
        assert after.status_code == 200, after.text
    stored = _project_logs(server, project)
    assert sorted(row["id"] for row in stored) == sorted(
        [first.json()["data"][0]["id"], after.json()["data"][0]["id"]]
    )
    assert {row["status"] for row in stored} == {"complete"}


def test_a_postgresql_outage_is_a_503_and_loopgate_reconnects(tmp_path: Path) -> None:
    cluster = PostgresCluster()  # its own: the tests' shared cluster must stay up
    cluster.start()
    try:
        url = cluster.database("outage")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")}
        env.update({"LOOPGATE_DATABASE_URL": url, "LOOPGATE_LOG_LEVEL": "warning"})
        server = Server(port=free_port(), database=url, env=env, log_path=tmp_path / "server.log")
        server.api_key = server.create_key(name="tests")
        server.start()
        project = unique("outage")
        try:
            with server.client() as client:
                first = client.post("/chat", json=chat_body(project, "before"))
                assert first.status_code == 200, first.text
                cluster.pause()
                try:
                    # The project and config are cached: the log's commit is what finds the server gone.
                    chat = client.post("/chat", json=chat_body(project, "while down"))
                    _refused(chat, "The log could not be stored", "cannot reach the database")
                    _refused(client.get("/projects"), "The database could not complete", "cannot reach")
                    probe = httpx.get(f"{server.base}/readyz")
                    _refused(probe, "The database could not complete", "cannot reach")
                    assert httpx.get(f"{server.base}/healthz").status_code == 200  # the process itself serves
                finally:
                    cluster.resume()
                after = client.post("/chat", json=chat_body(project, "after"))
                assert after.status_code == 200, after.text
                ready = httpx.get(f"{server.base}/readyz")
                assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
                # A database that hangs rather than refuses: the probe answers within its own bound.
                postgres = process_tree(int((cluster.data / "postmaster.pid").read_text().split()[0]))
                for pid in postgres:
                    os.kill(pid, signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    hung = httpx.get(f"{server.base}/readyz", timeout=30)
                    assert time.monotonic() - started < 5
                    assert hung.status_code == 503 and "no answer within 2 s" in hung.json()["detail"]
                finally:
                    for pid in postgres:
                        os.kill(pid, signal.SIGCONT)
                assert httpx.get(f"{server.base}/readyz", timeout=30).status_code == 200
        finally:
            server.stop()
        stored = _project_logs(server, project)
        assert sorted(row["id"] for row in stored) == sorted(
            [first.json()["data"][0]["id"], after.json()["data"][0]["id"]]
        )
    finally:
        cluster.stop()
