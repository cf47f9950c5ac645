"""Datasets and datapoints over HTTP: every endpoint, the shapes the SDK reads, datapoints copied from logs,
the exact count, 404s for unknown ids and other organizations' ids, 422s, and what deleting a project does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import db_rows, log_body, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

DATASET_KEYS = {"id", "project_id", "name", "description", "datapoint_count", "created_at", "updated_at"}
MESSAGE_KEYS = {"role", "content", "name", "tool_call_id", "tool_calls", "tool_call"}


@pytest.fixture(scope="module")
def other(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.create_key(org=unique("org"))) as http:
        yield http


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def new_project(client: httpx.Client) -> str:
    project_id: str = ok(client.post("/projects", json={"name": unique()}), 201)["id"]
    return project_id


def new_dataset(client: httpx.Client, project_id: str | None = None, **body: Any) -> dict[str, Any]:
    body = {"name": "golden", "description": "trusted answers", **body}
    created: dict[str, Any] = ok(
        client.post(f"/projects/{project_id or new_project(client)}/datasets", json=body), 201
    )
    return created


def add(client: httpx.Client, dataset_id: str, body: Any) -> list[dict[str, Any]]:
    added: list[dict[str, Any]] = ok(client.post(f"/datasets/{dataset_id}/datapoints", json=body), 201)
    return added


def new_log(client: httpx.Client, **extra: Any) -> str:
    log_id: str = ok(client.post("/logs", json=log_body(unique(), **extra)))["id"]
    return log_id


def assert_422(response: httpx.Response, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    assert any(error["loc"] == loc for error in response.json()["detail"]), response.text


# -- datasets ---------------------------------------------------------------------------------------------


def test_create_get_list_update_and_delete_a_dataset(client: httpx.Client) -> None:
    project_id = new_project(client)
    created = new_dataset(client, project_id)
    assert set(created) == DATASET_KEYS
    assert created["id"].startswith("evts_") and len(created["id"]) == 26
    assert (created["project_id"], created["name"], created["description"]) == (
        project_id,
        "golden",
        "trusted answers",
    )
    assert created["datapoint_count"] == 0 and created["created_at"] == created["updated_at"]
    assert ok(client.get(f"/datasets/{created['id']}")) == created

    second = new_dataset(client, project_id, name="second")
    elsewhere = new_dataset(client)
    assert [d["id"] for d in ok(client.get(f"/projects/{project_id}/datasets"))] == [
        created["id"],
        second["id"],
    ]
    everywhere = [d["id"] for d in ok(client.get("/datasets"))]
    assert {created["id"], second["id"], elsewhere["id"]} <= set(everywhere)

    renamed = ok(client.patch(f"/datasets/{created['id']}", json={"name": "renamed"}))
    assert (renamed["name"], renamed["description"]) == ("renamed", "trusted answers")
    assert renamed["updated_at"] > created["updated_at"]
    described = ok(client.patch(f"/datasets/{created['id']}", json={"description": "new words"}))
    assert (described["name"], described["description"]) == ("renamed", "new words")
    assert ok(client.patch(f"/datasets/{created['id']}", json={}))["name"] == "renamed"

    deleted = ok(client.delete(f"/datasets/{created['id']}"))
    assert deleted["id"] == created["id"] and deleted["name"] == "renamed"
    assert client.get(f"/datasets/{created['id']}").status_code == 404
    assert client.delete(f"/datasets/{created['id']}").status_code == 404
    assert [d["id"] for d in ok(client.get(f"/projects/{project_id}/datasets"))] == [second["id"]]


def test_dataset_bodies_are_validated(client: httpx.Client) -> None:
    project_id = new_project(client)
    path = f"/projects/{project_id}/datasets"
    assert_422(client.post(path, json={"name": "n"}), ["body", "description"])
    assert_422(client.post(path, json={"description": "d"}), ["body", "name"])
    assert_422(client.post(path, json={"name": "x" * 256, "description": "d"}), ["body", "name"])
    assert_422(client.post(path, json={"name": "n", "description": "d" * 256}), ["body", "description"])
    assert_422(client.post(path, json={"name": "n", "description": "d", "extra": 1}), ["body", "extra"])
    assert_422(client.post(path, json={"name": 5, "description": "d"}), ["body", "name"])
    assert (
        client.post(path, content=b"not json", headers={"content-type": "application/json"}).status_code
        == 422
    )
    created = new_dataset(client, project_id, name="x" * 255, description="d" * 255)
    assert_422(client.patch(f"/datasets/{created['id']}", json={"name": "x" * 256}), ["body", "name"])
    # SDK 0.5.18 adds provider_api_keys to every object body: accepted and ignored
    legacy = new_dataset(client, project_id, provider_api_keys={})
    assert "provider_api_keys" not in legacy
    assert ok(client.get(f"/projects/{project_id}/datasets"))[-1]["id"] == legacy["id"]


def test_unknown_and_foreign_ids_are_404(client: httpx.Client, other: httpx.Client) -> None:
    project_id = new_project(client)
    dataset = new_dataset(client, project_id)
    (datapoint,) = add(client, dataset["id"], {"inputs": {"a": "b"}})
    body = {"name": "n", "description": "d"}
    for http, project, dataset_id, datapoint_id in (
        (client, "pr_missing", "evts_missing", "dp_missing"),
        (other, project_id, dataset["id"], datapoint["id"]),
    ):
        assert http.get(f"/projects/{project}/datasets").status_code == 404
        assert http.post(f"/projects/{project}/datasets", json=body).status_code == 404
        assert http.get(f"/datasets/{dataset_id}").status_code == 404
        assert http.patch(f"/datasets/{dataset_id}", json={"name": "stolen"}).status_code == 404
        assert http.delete(f"/datasets/{dataset_id}").status_code == 404
        assert http.get(f"/datasets/{dataset_id}/datapoints").status_code == 404
        assert http.post(f"/datasets/{dataset_id}/datapoints", json={}).status_code == 404
        assert http.get(f"/datapoints/{datapoint_id}").status_code == 404
        assert http.patch(f"/datapoints/{datapoint_id}", json={"inputs": {}}).status_code == 404
        assert http.request("DELETE", "/datapoints", json=[datapoint_id]).status_code == 404
    assert dataset["id"] not in [d["id"] for d in ok(other.get("/datasets"))]
    # nothing of the other organization's attempts landed
    assert ok(client.get(f"/datasets/{dataset['id']}")) | {"updated_at": None} == dataset | {
        "datapoint_count": 1,
        "updated_at": None,
    }
    assert ok(client.get(f"/datapoints/{datapoint['id']}")) == datapoint
    assert client.get("/datasets/x").json() == {"detail": "Dataset 'x' not found"}


# -- datapoints -------------------------------------------------------------------------------------------


def test_one_datapoint_a_list_and_the_count(client: httpx.Client, server: Server) -> None:
    dataset = new_dataset(client)
    dataset_id = dataset["id"]
    message = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    (one,) = add(client, dataset_id, {"inputs": {"a": "1"}, "messages": [message], "target": {"n": 1.5}})
    assert set(one) == {"id", "dataset_id", "inputs", "messages", "target"}
    assert one["id"].startswith("dp_") and len(one["id"]) == 24 and one["dataset_id"] == dataset_id
    assert one["inputs"] == {"a": "1"} and one["target"] == {"n": 1.5}
    (stored_message,) = one["messages"]
    assert set(stored_message) == MESSAGE_KEYS and stored_message["content"] == message["content"]

    target = {"s": "x", "i": 2, "b": True, "l": [1, "a"], "o": {"deep": None}}
    many = add(client, dataset_id, [{"target": target}, {}, {"provider_api_keys": {}}])
    assert [d["target"] for d in many] == [target, {}, {}]
    assert many[1] == {
        "id": many[1]["id"],
        "dataset_id": dataset_id,
        "inputs": {},
        "messages": [],
        "target": {},
    }
    assert add(client, dataset_id, []) == []

    after = ok(client.get(f"/datasets/{dataset_id}"))
    assert after["datapoint_count"] == 4 and after["updated_at"] > dataset["updated_at"]
    assert ok(client.get(f"/datapoints/{one['id']}")) == one
    # a version per addition (none for the empty list); the counter is not part of any response
    (row,) = db_rows(server.database, "SELECT version FROM datasets WHERE id = ?", dataset_id)
    assert row[0] == 2


def test_pages_start_at_zero_with_fifty_by_default(client: httpx.Client) -> None:
    dataset_id = new_dataset(client)["id"]
    added = add(client, dataset_id, [{"inputs": {"n": str(n)}} for n in range(53)])
    added += add(client, dataset_id, {"inputs": {"n": "53"}})
    first = ok(client.get(f"/datasets/{dataset_id}/datapoints"))
    assert (first["page"], first["size"], first["total"]) == (0, 50, 54)
    assert first["records"] == added[:50]
    last = ok(client.get(f"/datasets/{dataset_id}/datapoints", params={"page": 2, "size": 20}))
    assert (last["page"], last["size"], last["total"]) == (2, 20, 54) and last["records"] == added[40:]
    beyond = ok(client.get(f"/datasets/{dataset_id}/datapoints", params={"page": 9}))
    assert beyond["records"] == [] and beyond["total"] == 54
    path = f"/datasets/{dataset_id}/datapoints"
    assert_422(client.get(path, params={"page": -1}), ["query", "page"])
    assert_422(client.get(path, params={"size": 0}), ["query", "size"])
    assert_422(client.get(path, params={"page": "first"}), ["query", "page"])


def test_datapoint_bodies_are_validated_and_nothing_is_added(client: httpx.Client) -> None:
    dataset_id = new_dataset(client)["id"]
    path = f"/datasets/{dataset_id}/datapoints"
    assert_422(client.post(path, json={"inputs": {"a": 1}}), ["body", "datapoint", "inputs", "a"])
    assert_422(
        client.post(path, json={"messages": [{"content": "x"}]}), ["body", "datapoint", "messages", 0, "role"]
    )
    assert_422(
        client.post(path, json={"messages": [{"role": "robot"}]}),
        ["body", "datapoint", "messages", 0, "role"],
    )
    assert_422(client.post(path, json={"target": ["not", "an", "object"]}), ["body", "datapoint", "target"])
    assert_422(client.post(path, json={"unknown": 1}), ["body", "datapoint", "unknown"])
    assert_422(client.post(path, json=[{}, {"inputs": "x"}]), ["body", "datapoints", 1, "inputs"])
    assert_422(client.post(path, json={"log_ids": "data_x"}), ["body", "logs", "log_ids"])
    assert_422(client.post(path, json={"log_ids": [], "inputs": {}}), ["body", "logs", "inputs"])
    assert_422(client.post(path, json="text"), ["body", "datapoint"])
    assert client.post(path).status_code == 422
    assert ok(client.get(f"/datasets/{dataset_id}"))["datapoint_count"] == 0


def test_datapoints_copied_from_logs(client: httpx.Client, other: httpx.Client) -> None:
    dataset_id = new_dataset(client)["id"]
    chat = ok(
        client.post(
            "/chat",
            json={
                "project": unique(),
                "model_config": {
                    "provider": "mock",
                    "model": "mock-1",
                    "chat_template": [{"role": "system", "content": "You are {{who}}."}],
                },
                "inputs": {"who": "a pirate"},
                "messages": [{"role": "user", "content": "Ahoy?"}],
            },
        )
    )["data"][0]
    tool_calls = [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    posted = new_log(
        client,
        inputs={"n": 3, "s": "text"},
        messages=[{"role": "user", "content": "look it up"}],
        output_message={"role": "assistant", "content": None, "tool_calls": tool_calls},
    )
    no_output = new_log(client)
    copied = add(client, dataset_id, {"log_ids": [chat["id"], posted, chat["id"], no_output]})
    assert len(copied) == 3  # a log listed twice is copied once

    from_chat, from_post, empty = copied
    assert from_chat["inputs"] == {"who": "a pirate"}
    assert [(m["role"], m["content"]) for m in from_chat["messages"]] == [
        ("system", "You are a pirate."),
        ("user", "Ahoy?"),
    ]
    assert from_chat["target"] == {"output": chat["output"]}
    # inputs are strings in DatapointResponse: other JSON values are kept as their JSON text
    assert from_post["inputs"] == {"n": "3", "s": "text"}
    assert from_post["target"]["tool_calls"] == tool_calls
    assert empty["inputs"] == {} and "tool_calls" not in empty["target"]

    # the copy does not follow the log
    assert client.request("DELETE", "/logs", params={"id": chat["id"]}).status_code == 204
    assert ok(client.get(f"/datapoints/{from_chat['id']}")) == from_chat

    # an unknown log, or another organization's, is a 404 and nothing is added
    foreign = new_log(other)
    for log_ids in ([posted, "data_missing"], [foreign]):
        response = client.post(f"/datasets/{dataset_id}/datapoints", json={"log_ids": log_ids})
        assert response.status_code == 404 and log_ids[-1] in response.json()["detail"]
    assert ok(client.get(f"/datasets/{dataset_id}"))["datapoint_count"] == 3


def test_patch_and_delete_of_datapoints_as_sdk_0_5_18_sends_them(client: httpx.Client) -> None:
    dataset = new_dataset(client)
    dataset_id = dataset["id"]
    first, second, third = add(client, dataset_id, [{"inputs": {"a": "1"}, "target": {"t": "x"}}, {}, {}])
    before = ok(client.get(f"/datasets/{dataset_id}"))

    patched = ok(
        client.patch(f"/datapoints/{first['id']}", json={"inputs": {"a": "2"}, "provider_api_keys": {}})
    )
    assert patched == {**first, "inputs": {"a": "2"}}
    assert ok(client.get(f"/datapoints/{first['id']}")) == patched
    messages = ok(
        client.patch(f"/datapoints/{first['id']}", json={"messages": [{"role": "user", "content": "q"}]})
    )
    assert messages["target"] == {"t": "x"} and messages["messages"][0]["content"] == "q"
    assert_422(client.patch(f"/datapoints/{first['id']}", json={"inputs": {"a": 1}}), ["body", "inputs", "a"])
    assert ok(client.get(f"/datasets/{dataset_id}"))["updated_at"] > before["updated_at"]

    missing = client.request("DELETE", "/datapoints", json=[second["id"], "dp_missing"])
    assert missing.status_code == 404 and "dp_missing" in missing.json()["detail"]
    assert ok(client.get(f"/datasets/{dataset_id}"))["datapoint_count"] == 3
    assert client.request("DELETE", "/datapoints", json=[second["id"], third["id"]]).status_code == 204
    assert client.get(f"/datapoints/{second['id']}").status_code == 404
    assert ok(client.get(f"/datasets/{dataset_id}"))["datapoint_count"] == 1
    assert [d["id"] for d in ok(client.get(f"/datasets/{dataset_id}/datapoints"))["records"]] == [first["id"]]
    # SDK 0.7.35 sends no body at all (the endpoint is decommissioned there): a 422, not a 500
    assert_422(client.request("DELETE", "/datapoints"), ["body"])
    assert_422(client.request("DELETE", "/datapoints", json={"ids": []}), ["body"])


def test_deleting_a_dataset_deletes_its_datapoints(client: httpx.Client, server: Server) -> None:
    dataset_id = new_dataset(client)["id"]
    datapoints = add(client, dataset_id, [{}, {}])
    ok(client.delete(f"/datasets/{dataset_id}"))
    assert all(client.get(f"/datapoints/{d['id']}").status_code == 404 for d in datapoints)
    assert db_rows(server.database, "SELECT id FROM datapoints WHERE dataset_id = ?", dataset_id) == []


def test_deleting_its_project_detaches_a_dataset(client: httpx.Client) -> None:
    project_id = new_project(client)
    dataset = new_dataset(client, project_id)
    (datapoint,) = add(client, dataset["id"], {"inputs": {"kept": "yes"}})
    assert client.delete(f"/projects/{project_id}").status_code == 204

    kept = ok(client.get(f"/datasets/{dataset['id']}"))
    assert kept["project_id"] == "" and kept["datapoint_count"] == 1 and kept["name"] == dataset["name"]
    assert dataset["id"] in [d["id"] for d in ok(client.get("/datasets"))]
    assert ok(client.get(f"/datapoints/{datapoint['id']}")) == datapoint
    assert client.get(f"/projects/{project_id}/datasets").status_code == 404
    assert (
        client.post(f"/projects/{project_id}/datasets", json={"name": "n", "description": "d"}).status_code
        == 404
    )
    assert len(add(client, dataset["id"], {})) == 1  # still a working dataset
