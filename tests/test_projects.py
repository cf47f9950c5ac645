"""Projects over HTTP: create / get / list (pagination, filter, sort) / update / delete, config versions,
feedback types, and isolation between organizations."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import chat_body, db_rows, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

MOCK = {"provider": "mock", "model": "mock-1"}
PROJECT_KEYS = {
    "id",
    "name",
    "active_config",
    "users",
    "data_count",
    "feedback_types",
    "team_id",
    "config_type",
    "active_evaluators",
    "directory_id",
    "created_at",
    "updated_at",
}


@pytest.fixture(scope="module")
def other_org(server: Server) -> Iterator[httpx.Client]:
    """A client of a second organization on the same server."""
    with server.client(server.create_key(org=unique("org"))) as http:
        yield http


def create(client: httpx.Client, name: str, **extra: object) -> dict:
    response = client.post("/projects", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_a_full_project_response(client: httpx.Client) -> None:
    name = unique("proj")
    project = create(client, name, directory_id="dir_abc")
    assert set(project) == PROJECT_KEYS
    assert project["id"].startswith("pr_") and len(project["id"]) == 24
    assert project["name"] == name and project["directory_id"] == "dir_abc"
    assert project["team_id"].startswith("tm_")
    assert project["users"] == [] and project["data_count"] == 0 and project["active_config"] is None
    types = {entry["type"]: entry["values"] for entry in project["feedback_types"]}
    assert list(types) == ["rating", "action", "issue", "correction", "comment"]
    assert types["rating"] == [
        {"value": "good", "sentiment": "positive"},
        {"value": "bad", "sentiment": "negative"},
    ]
    assert [label["value"] for label in types["action"]] == ["copied", "saved", "dismissed"]
    assert client.get(f"/projects/{project['id']}").json() == project


def test_duplicate_name_is_409_and_bad_bodies_422(client: httpx.Client) -> None:
    name = unique("dup")
    create(client, name)
    again = client.post("/projects", json={"name": name})
    assert again.status_code == 409
    assert name in again.json()["detail"]
    for body in ({}, {"name": "  "}, {"name": 5}, {"name": "x", "unknown": 1}):
        response = client.post("/projects", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], list)
    # SDK 0.5.18 adds provider_api_keys to every body: accepted and ignored.
    assert client.post("/projects", json={"name": unique(), "provider_api_keys": {}}).status_code == 201


def test_unknown_project_is_404_everywhere(client: httpx.Client) -> None:
    missing = "pr_doesnotexist00000000"
    for method, path in (
        ("GET", f"/projects/{missing}"),
        ("DELETE", f"/projects/{missing}"),
        ("GET", f"/projects/{missing}/configs"),
        ("GET", f"/projects/{missing}/active-config"),
        ("DELETE", f"/projects/{missing}/active-config"),
        ("GET", f"/projects/{missing}/deployed-configs"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert isinstance(response.json()["detail"], str)
    assert client.patch(f"/projects/{missing}", json={"name": "x"}).status_code == 404


def test_list_paginates_filters_and_sorts(client: httpx.Client) -> None:
    tag = unique("list")
    names = [f"{tag}-b", f"{tag}-a", f"{tag}-C"]
    for name in names:
        create(client, name)
    default = client.get("/projects", params={"filter": tag.upper()}).json()
    assert set(default) == {"records", "page", "size", "total"}
    assert default["page"] == 0 and default["size"] == 10 and default["total"] == 3
    assert [p["name"] for p in default["records"]] == list(reversed(names))  # newest first
    by_name = client.get("/projects", params={"filter": tag, "sort_by": "name", "order": "asc"}).json()
    assert [p["name"] for p in by_name["records"]] == sorted(names, key=str.lower)  # a, b, C
    first = client.get(
        "/projects", params={"filter": tag, "size": 2, "sort_by": "created_at", "order": "asc"}
    )
    second = client.get(
        "/projects", params={"filter": tag, "size": 2, "page": 1, "sort_by": "created_at", "order": "asc"}
    )
    assert [p["name"] for p in first.json()["records"]] == names[:2]
    assert [p["name"] for p in second.json()["records"]] == names[2:]
    assert second.json()["total"] == 3 and second.json()["page"] == 1
    # LIKE wildcards in the filter are literal characters
    assert client.get("/projects", params={"filter": f"{tag}%"}).json()["total"] == 0
    assert client.get("/projects", params={"filter": tag, "user_filter": "ann"}).json()["total"] == 0
    for bad in ({"page": -1}, {"page": 10**20}, {"size": 0}, {"sort_by": "size"}, {"order": "up"}):
        response = client.get("/projects", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"][0] == "query"


def test_data_count_configs_and_active_config(client: httpx.Client) -> None:
    name = unique("counts")
    chat = client.post("/chat", json=chat_body(name, num_samples=2)).json()
    client.post("/chat", json=chat_body(name, model_config={**MOCK, "temperature": 0.2}))
    project = client.get(f"/projects/{chat['project_id']}").json()
    assert project["data_count"] == 3
    assert project["active_config"] is None  # /chat versions configs but deploys nothing
    configs = client.get(f"/projects/{project['id']}/configs").json()
    assert isinstance(configs, list) and len(configs) == 2
    first = configs[0]
    assert first["config"]["id"] == chat["data"][0]["model_config_id"]
    assert first["num_datapoints"] == 2 and configs[1]["num_datapoints"] == 1
    assert first["project_id"] == project["id"] and first["project_name"] == name
    assert first["last_used"] >= first["created_at"]
    config = first["config"]
    assert config["type"] == "model" and config["model"] == "mock-1" and config["provider"] == "mock"
    assert config["endpoint"] == "chat" and config["temperature"] == 1 and config["tools"] == []

    patched = client.patch(f"/projects/{project['id']}", json={"active_config_id": config["id"]})
    assert patched.status_code == 200
    active = patched.json()["active_config"]
    assert active["config"]["id"] == config["id"] and active["num_datapoints"] == 2
    listed = client.get("/projects", params={"filter": name}).json()["records"][0]
    assert listed["active_config"]["config"]["id"] == config["id"] and listed["data_count"] == 3


def test_update_renames_moves_and_refuses_taken_names(client: httpx.Client) -> None:
    taken = create(client, unique("taken"))
    project = create(client, unique("old"))
    new_name = unique("new")
    updated = client.patch(f"/projects/{project['id']}", json={"name": new_name, "directory_id": "dir_x"})
    assert updated.status_code == 200
    body = updated.json()
    assert body["name"] == new_name and body["directory_id"] == "dir_x"
    assert body["updated_at"] > project["updated_at"]
    conflict = client.patch(
        f"/projects/{project['id']}", json={"name": taken["name"], "directory_id": "dir_y"}
    )
    assert conflict.status_code == 409
    assert client.get(f"/projects/{project['id']}").json()["directory_id"] == "dir_x"  # nothing changed
    # the old name is free again and names a new project; the new name reaches the renamed one
    fresh = client.post("/chat", json=chat_body(project["name"])).json()
    assert fresh["project_id"] != project["id"]
    assert client.post("/chat", json=chat_body(new_name)).json()["project_id"] == project["id"]
    assert client.patch(f"/projects/{project['id']}", json={"name": ""}).status_code == 422
    assert (
        client.patch(f"/projects/{project['id']}", json={"active_config_id": "config_nope"}).status_code
        == 404
    )


def test_delete_removes_the_project_its_logs_and_configs(client: httpx.Client, server: Server) -> None:
    name = unique("del")
    chat = client.post("/chat", json=chat_body(name)).json()
    project_id = chat["project_id"]
    log_id = chat["data"][0]["id"]
    response = client.delete(f"/projects/{project_id}")
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"/projects/{project_id}").status_code == 404
    assert db_rows(server.database, "SELECT id FROM logs WHERE id = ?", log_id) == []
    assert db_rows(server.database, "SELECT id FROM model_configs WHERE project_id = ?", project_id) == []
    # the name can be used again, as a new project
    again = client.post("/chat", json=chat_body(name)).json()
    assert again["project_id"] != project_id


def test_feedback_types_add_and_replace(client: httpx.Client) -> None:
    project = create(client, unique("fb"))
    url = f"/projects/{project['id']}/feedback-types"
    body = {
        "type": "tone",
        "class": "select",
        "values": [
            {"value": "friendly", "sentiment": "positive"},
            {"value": "rude", "sentiment": "negative"},
        ],
    }
    response = client.post(url, json=body)
    assert response.status_code == 201
    assert response.json() == {"type": "tone", "values": body["values"]}
    free = client.post(url, json={"type": "notes", "class": "text"}).json()
    assert free == {"type": "notes", "values": None}
    replaced = client.post(url, json={"type": "rating", "class": "select", "values": [{"value": "5"}]}).json()
    assert replaced == {"type": "rating", "values": [{"value": "5", "sentiment": "unset"}]}
    types = client.get(f"/projects/{project['id']}").json()["feedback_types"]
    assert [t["type"] for t in types] == [
        "rating",
        "action",
        "issue",
        "correction",
        "comment",
        "tone",
        "notes",
    ]
    assert types[0]["values"] == [{"value": "5", "sentiment": "unset"}]
    for bad in (
        {"type": "x", "class": "nope"},
        {"type": "x"},
        {"type": " ", "class": "text"},
        {"type": "x", "class": "text", "values": [{"value": "a"}]},
        {"type": "x", "class": "select", "values": [{"value": "a"}, {"value": "a"}]},
        {"type": "x", "class": "select", "values": [{"value": "a", "sentiment": "happy"}]},
    ):
        assert client.post(url, json=bad).status_code == 422, bad


def test_feedback_types_given_at_creation(client: httpx.Client) -> None:
    """TypeScript SDK 0.5.x's CreateProjectRequest still has ``feedback_types`` (gone from the 4.0.1 spec)."""
    tone = {"type": "tone", "class": "select", "values": [{"value": "warm", "sentiment": "positive"}]}
    rating = {"type": "rating", "class": "select", "values": [{"value": "5"}]}
    project = create(client, unique("fbc"), feedback_types=[tone, {"type": "notes", "class": "text"}, rating])
    types = {t["type"]: t["values"] for t in project["feedback_types"]}
    assert list(types) == ["rating", "action", "issue", "correction", "comment", "tone", "notes"]
    assert types["tone"] == tone["values"] and types["notes"] is None
    assert types["rating"] == [{"value": "5", "sentiment": "unset"}]  # a default replaced, as by the route
    assert client.get(f"/projects/{project['id']}").json()["feedback_types"] == project["feedback_types"]
    # a feedback with a custom type's label is accepted on the new project's logs
    log = client.post("/logs", json={"project_id": project["id"], "config": MOCK, "output": "x"}).json()
    feedback = client.post("/feedback", json={"type": "tone", "value": "warm", "data_id": log["id"]})
    assert feedback.status_code == 200, feedback.text

    # every type is checked before the project exists: a refused one leaves the name free
    name = unique("fbc")
    repeated = {"type": "x", "class": "select", "values": [{"value": "a"}, {"value": "a"}]}
    response = client.post("/projects", json={"name": name, "feedback_types": [tone, repeated]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "feedback_types", 1, "values", 1, "value"]
    stray = {**tone, "id": "pr_x"}  # only the route's body takes the path echo
    assert client.post("/projects", json={"name": name, "feedback_types": [stray]}).status_code == 422
    create(client, name)


def test_other_organizations_see_nothing(client: httpx.Client, other_org: httpx.Client) -> None:
    name = unique("mine")
    chat = client.post("/chat", json=chat_body(name)).json()
    project_id, config_id = chat["project_id"], chat["data"][0]["model_config_id"]
    assert other_org.get(f"/projects/{project_id}").status_code == 404
    assert other_org.get(f"/projects/{project_id}/configs").status_code == 404
    assert other_org.patch(f"/projects/{project_id}", json={"name": "stolen"}).status_code == 404
    assert other_org.delete(f"/projects/{project_id}").status_code == 404
    assert other_org.get("/projects", params={"filter": name}).json()["total"] == 0
    assert other_org.get(f"/model-configs/{config_id}").status_code == 404
    # the same name is free in the other organization, and a different project there
    theirs = other_org.post("/projects", json={"name": name})
    assert theirs.status_code == 201 and theirs.json()["id"] != project_id
    assert client.get(f"/projects/{project_id}").json()["name"] == name
