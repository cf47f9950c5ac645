"""Several server processes on one database: first uses that race across processes (a new project name, a
new session reference id, new model-config parameters) end with exactly one row each, and no request fails.

Two ``loopgate serve`` processes share one PostgreSQL database (the scale-out setup of docs/deploy.md);
``loopgate serve --workers 2`` is checked on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopgate.store.writers.hub import PROCESS_NAME
from tests.conftest import Server, free_port, make_server, serving
from tests.helpers import chat_body, chat_everywhere, db_rows, unique

CHATS = 200


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two server processes on one PostgreSQL database (one key works on both)."""
    first = make_server(tmp_path_factory.mktemp("scale-a"), backend="postgresql")
    directory = tmp_path_factory.mktemp("scale-b")
    second = Server(
        port=free_port(),
        database=first.database,
        env=first.env,
        api_key=first.api_key,
        log_path=directory / "server.log",
    )
    with serving(first, second):
        yield first, second


def _count(server: Server, query: str, *params: object) -> int:
    return int(db_rows(server.database, query, *params)[0][0])


def test_a_burst_of_first_uses_over_two_processes_makes_one_of_each(pair: tuple[Server, Server]) -> None:
    project, reference = unique("burst"), unique("conversation")
    config = {"provider": "mock", "model": "mock-1", "temperature": 0.31, "max_tokens": 77}
    bodies = [
        chat_body(project, f"message {i}", session_reference_id=reference, model_config=config)
        for i in range(CHATS)
    ]
    responses = asyncio.run(chat_everywhere(list(pair), bodies))
    assert [r.status_code for r in responses] == [200] * CHATS, next(
        r.text for r in responses if r.status_code != 200
    )
    answers = [r.json() for r in responses]
    assert len({a["project_id"] for a in answers}) == 1
    assert len({a["session_id"] for a in answers}) == 1
    assert len({a["data"][0]["model_config_id"] for a in answers}) == 1

    server = pair[0]
    project_id, session_id = answers[0]["project_id"], answers[0]["session_id"]
    assert _count(server, "SELECT count(*) FROM projects WHERE name = ?", project) == 1
    assert _count(server, "SELECT count(*) FROM sessions WHERE reference_id = ?", reference) == 1
    assert _count(server, "SELECT count(*) FROM model_configs WHERE project_id = ?", project_id) == 1
    assert _count(server, "SELECT count(*) FROM logs WHERE session_id = ?", session_id) == CHATS
    with pair[1].client() as client:  # the API agrees, whichever process answers
        listed = client.get("/logs", params={"project_id": project_id, "size": 1}).json()
        assert listed["total"] == CHATS
        session = client.get(f"/sessions/{session_id}").json()
        assert session["reference_id"] == reference and len(session["datapoints"]) == CHATS


def test_new_config_parameters_in_a_known_project_make_one_version(pair: tuple[Server, Server]) -> None:
    project = unique("known")
    with pair[0].client() as client:
        assert client.post("/chat", json=chat_body(project)).status_code == 200
    config = {"provider": "mock", "model": "mock-1", "temperature": 0.77, "top_p": 0.5}
    bodies = [chat_body(project, f"q{i}", model_config=config) for i in range(CHATS // 2)]
    responses = asyncio.run(chat_everywhere(list(pair), bodies))
    assert {r.status_code for r in responses} == {200}
    config_ids = {r.json()["data"][0]["model_config_id"] for r in responses}
    assert len(config_ids) == 1
    project_id = responses[0].json()["project_id"]
    assert _count(pair[0], "SELECT count(*) FROM model_configs WHERE project_id = ?", project_id) == 2


def _child_names(server: Server) -> list[str]:
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    return [Path(f"/proc/{pid}/comm").read_text().strip() for pid in children]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_serve_with_two_workers_runs_two_processes_that_agree(tmp_path: Path, backend: str) -> None:
    server = make_server(tmp_path, backend=backend)
    project, reference = unique("workers"), unique("conversation")
    bodies = [chat_body(project, f"m{i}", session_reference_id=reference) for i in range(CHATS // 2)]
    server.start("--workers", "2", timeout=90)
    try:
        # loopgate's supervisor forks one child per worker (loopgate/supervisor.py) and, on SQLite, one
        # that commits every worker's logs (store/writers/hub.py).
        names = _child_names(server)
        assert len([name for name in names if name != PROCESS_NAME]) == 2
        assert names.count(PROCESS_NAME) == (1 if backend == "sqlite" else 0)
        responses = asyncio.run(chat_everywhere([server], bodies))
    finally:
        server.stop()
    assert {r.status_code for r in responses} == {200}
    assert _count(server, "SELECT count(*) FROM projects WHERE name = ?", project) == 1
    assert _count(server, "SELECT count(*) FROM sessions WHERE reference_id = ?", reference) == 1
    assert (
        _count(server, "SELECT count(*) FROM logs WHERE project_id = ?", responses[0].json()["project_id"])
        == 100
    )
