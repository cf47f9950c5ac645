"""Request values that land in bounded columns are bounded where the request is read: one too long is a 422
naming the field (a 400 naming the parameter at the OpenAI-compatible door), on SQLite as on PostgreSQL,
whose inserts refused them with a 500. POST /logs had these bounds already; the generation endpoints,
projects, model configs and tool configs did not (found by an API-conformance run of schemathesis on
PostgreSQL). A value exactly as wide as its column is stored whole."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import MOCK_CONFIG, chat_body, log_body, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

LONG = "x" * 256  # one more than the String(255) columns hold


def assert_too_long(response: httpx.Response, loc: list[Any], width: int = 255) -> None:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and error["type"] == "string_too_long", error
    assert f"at most {width} characters" in error["msg"]


@pytest.mark.parametrize(
    ("field", "value", "width"),
    [
        ("source", LONG, 255),
        ("user", LONG, 255),
        ("session_reference_id", LONG, 255),
        ("project", LONG, 255),
        ("source_datapoint_id", "d" * 65, 64),
    ],
)
@pytest.mark.parametrize("path", ["/chat", "/completion"])
def test_generation_fields_are_bounded(
    client: httpx.Client, path: str, field: str, value: str, width: int
) -> None:
    body = {**chat_body(unique("widths")), field: value}
    if path == "/completion":
        body = {**body, "model_config": {**MOCK_CONFIG, "prompt_template": "hi"}}
        del body["messages"]
    assert_too_long(client.post(path, json=body), ["body", field], width)


@pytest.mark.parametrize("field", ["name", "model"])
def test_model_config_names_are_bounded(client: httpx.Client, field: str) -> None:
    # A new version is stored under its name, or its model when it has none: both are String(255).
    config = {**MOCK_CONFIG, field: LONG}
    assert_too_long(client.post("/chat", json=chat_body(unique("widths"), model_config=config)),
                    ["body", "model_config", field])  # fmt: skip
    registered = client.post("/model-configs", json={**config, "project": unique("widths")})
    assert_too_long(registered, ["body", field])
    assert_too_long(client.post("/logs", json=log_body(unique("widths"), config=config)),
                    ["body", "config", "model", field])  # fmt: skip


def test_project_fields_are_bounded(client: httpx.Client) -> None:
    assert_too_long(client.post("/projects", json={"name": LONG}), ["body", "name"])
    assert_too_long(client.post("/projects", json={"name": unique("widths"), "directory_id": "d" * 41}),
                    ["body", "directory_id"], 40)  # fmt: skip
    assert_too_long(client.post("/model-configs", json={**MOCK_CONFIG, "project": LONG}), ["body", "project"])
    project = client.post("/projects", json={"name": unique("widths")}).json()
    assert_too_long(client.patch(f"/projects/{project['id']}", json={"name": LONG}), ["body", "name"])
    assert client.get(f"/projects/{project['id']}").json()["name"] == project["name"]


def test_a_tool_config_name_is_bounded(client: httpx.Client) -> None:
    body = log_body(unique("widths"), config={"type": "tool", "name": LONG}, output="o")
    assert_too_long(client.post("/logs", json=body), ["body", "config", "tool", "name"])


def test_values_as_wide_as_their_columns_are_stored_whole(client: httpx.Client) -> None:
    full = "y" * 255
    project = unique("widths")[:20] + "z" * 235
    body = chat_body(project, source=full, user=full, session_reference_id=full, source_datapoint_id="d" * 64)
    body["model_config"] = {**MOCK_CONFIG, "model": full}
    answered = client.post("/chat", json=body)
    assert answered.status_code == 200, answered.text
    log = client.get(f"/logs/{answered.json()['data'][0]['id']}").json()
    assert (log["source"], log["user"], log["source_datapoint_id"]) == (full, full, "d" * 64)
    assert client.get(f"/projects/{log['project_id']}").json()["name"] == project
    assert client.get(f"/model-configs/{log['config']['id']}").json()["model"] == full


def test_the_openai_door_bounds_the_reference_id_header(server: Server) -> None:
    headers = {"X-API-KEY": server.api_key, "X-Loopgate-Reference-Id": LONG}
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{server.base}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "X-Loopgate-Reference-Id"
