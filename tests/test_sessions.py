"""Sessions over HTTP: POST /sessions, GET /sessions/{id} (with its logs as a tree), GET /sessions paging,
and organizations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import chat_body, log_body, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")


@pytest.fixture(scope="module")
def other(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.create_key(org=unique("org"))) as http:
        yield http


def log(client: httpx.Client, project: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/logs", json=log_body(project, **extra))
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def session(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/sessions/{session_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_an_empty_session(client: httpx.Client) -> None:
    response = client.post("/sessions")
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id"} and created["id"].startswith("sesh_") and len(created["id"]) == 26
    empty = session(client, created["id"])
    assert empty["id"] == created["id"] and empty["reference_id"] is None
    assert empty["projects"] == [] and empty["datapoints_count"] == 0 and empty["datapoints"] == []
    assert empty["first_inputs"] is None and empty["last_output"] is None
    assert empty["created_at"] and empty["updated_at"]
    assert client.get("/sessions/sesh_doesnotexist000000000").status_code == 404


def test_a_session_reads_back_as_a_tree(client: httpx.Client) -> None:
    project, second_project = unique(), unique()
    session_id = client.post("/sessions").json()["id"]
    root = log(
        client,
        project,
        session_id=session_id,
        inputs={"q": "first"},
        reference_id=unique("root"),
        created_at="2024-03-01T00:00:00Z",
    )
    chat = client.post(
        "/chat", json=chat_body(second_project, "child chat", session_id=session_id, parent_id=root["id"])
    ).json()
    leaf = log(client, project, parent_id=chat["data"][0]["id"], output="the end")

    found = session(client, session_id)
    assert found["datapoints_count"] == 3
    assert sorted(p["name"] for p in found["projects"]) == sorted([project, second_project])
    assert all(p["id"].startswith("pr_") and p["type"] == "prompt" for p in found["projects"])
    assert found["first_inputs"] == {"q": "first"}
    assert found["last_output"] == "the end"
    assert found["updated_at"] >= found["created_at"]

    points = found["datapoints"]
    assert [p["id"] for p in points] == [root["id"], chat["data"][0]["id"], leaf["id"]]
    children: dict[str | None, list[str]] = {}
    for point in points:
        assert point["session_id"] == session_id and point["config"]["type"] == "model"
        children.setdefault(point["parent_id"], []).append(point["id"])
    assert children == {
        None: [root["id"]],
        root["id"]: [chat["data"][0]["id"]],
        chat["data"][0]["id"]: [leaf["id"]],
    }
    assert points[1]["messages"][-1]["content"] == "child chat"


def test_a_session_created_by_reference_reports_it(client: httpx.Client) -> None:
    reference = unique("session")
    created = log(client, unique(), session_reference_id=reference)
    found = session(client, created["session_id"])
    assert found["reference_id"] == reference
    assert found["datapoints"][0]["session_reference_id"] == reference


def test_sessions_of_a_project_page_from_one(client: httpx.Client) -> None:
    project = unique()
    sessions = [
        log(client, project, session_reference_id=unique("s"), output=f"o{n}")["session_id"] for n in range(3)
    ]
    project_id = client.get(f"/sessions/{sessions[0]}").json()["projects"][0]["id"]
    log(client, project)  # no session: not listed
    elsewhere = log(client, unique(), session_reference_id=unique("s"))  # another project's session
    response = client.get("/sessions", params={"project_id": project_id})
    assert response.status_code == 200
    page = response.json()
    assert (page["page"], page["size"], page["total"]) == (1, 10, 3)
    assert [s["id"] for s in page["records"]] == sessions[::-1]
    assert elsewhere["session_id"] not in {s["id"] for s in page["records"]}
    record = page["records"][0]
    assert record["datapoints_count"] == 1 and record["last_output"] == "o2"
    assert record["first_inputs"] == {} and "datapoints" not in record

    second = client.get("/sessions", params={"project_id": project_id, "page": 2, "size": 2}).json()
    assert [s["id"] for s in second["records"]] == [sessions[0]] and second["total"] == 3
    assert client.get("/sessions", params={"project_id": project_id, "page": 0}).status_code == 422
    assert client.get("/sessions").status_code == 422
    assert client.get("/sessions", params={"project_id": "pr_doesnotexist000000000"}).status_code == 404


def test_another_organization_sees_no_session(client: httpx.Client, other: httpx.Client) -> None:
    project = unique()
    created = log(client, project, session_reference_id=unique("s"))
    project_id = session(client, created["session_id"])["projects"][0]["id"]
    assert other.get(f"/sessions/{created['session_id']}").status_code == 404
    assert other.get("/sessions", params={"project_id": project_id}).status_code == 404
    joined = other.post("/logs", json=log_body(project, session_id=created["session_id"]))
    assert joined.status_code == 404
    assert session(client, created["session_id"])["datapoints_count"] == 1
