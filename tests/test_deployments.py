"""Environments and deployments over HTTP, on a server that declares extra environments
(``LOOPGATE_ENVIRONMENTS``): deployed-configs, deploy-config, deployed-config removal, active-config, and
``/chat-deployed`` / ``/chat-model-config`` running what is deployed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server
from tests.helpers import db_rows, log_row, sse_events, unique

MOCK = {"provider": "mock", "model": "mock-1"}
DEPLOYMENT_KEYS = {
    "project_id",
    "project_name",
    "model_config_id",
    "model_config_name",
    "environment_id",
    "environment_name",
    "environment_tag",
}


@pytest.fixture(scope="module")
def envs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(
        tmp_path_factory.mktemp("envs"), LOOPGATE_ENVIRONMENTS=" staging, development,staging,"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http(envs_server: Server) -> Iterator[httpx.Client]:
    with envs_server.client() as client:
        yield client


def register(http: httpx.Client, project: str, **config: Any) -> dict[str, Any]:
    response = http.post("/model-configs", json={**MOCK, "project": project, **config})
    assert response.status_code == 200, response.text
    return response.json()


def environments(http: httpx.Client, project_id: str) -> dict[str, dict[str, Any]]:
    response = http.get(f"/projects/{project_id}/deployed-configs")
    assert response.status_code == 200
    return {entry["environment_name"]: entry for entry in response.json()}


def test_every_environment_is_listed_with_what_is_deployed(http: httpx.Client) -> None:
    project = http.post("/projects", json={"name": unique("envs")}).json()
    listed = http.get(f"/projects/{project['id']}/deployed-configs").json()
    assert [entry["environment_name"] for entry in listed] == ["production", "staging", "development"]
    assert [entry["environment_tag"] for entry in listed] == ["default", "other", "other"]
    for entry in listed:
        assert set(entry) == DEPLOYMENT_KEYS
        assert entry["environment_id"].startswith("env_")
        assert entry["model_config_id"] is None and entry["model_config_name"] is None
        assert entry["project_id"] == project["id"] and entry["project_name"] == project["name"]
    # environments belong to the organization: another project sees the same ids
    other = http.post("/projects", json={"name": unique("envs")}).json()
    assert [e["environment_id"] for e in http.get(f"/projects/{other['id']}/deployed-configs").json()] == [
        e["environment_id"] for e in listed
    ]


def test_deploy_replace_and_remove(http: httpx.Client) -> None:
    name = unique("deploy")
    first = register(http, name, temperature=0.1, name="first")  # active in production
    second = register(http, name, temperature=0.2, name="second")
    project_id = first["project_id"]
    envs = environments(http, project_id)
    assert envs["production"]["model_config_id"] == first["config"]["id"]
    assert envs["production"]["model_config_name"] == "first"
    staging, development = envs["staging"]["environment_id"], envs["development"]["environment_id"]

    body = {"config_id": second["config"]["id"], "environments": [{"id": staging}, {"id": development}]}
    deployed = http.patch(f"/projects/{project_id}/deploy-config", json=body)
    assert deployed.status_code == 200
    by_name = {entry["environment_name"]: entry["model_config_id"] for entry in deployed.json()}
    assert by_name == {
        "production": first["config"]["id"],
        "staging": second["config"]["id"],
        "development": second["config"]["id"],
    }
    # a deploy replaces what the environment had
    back = {"config_id": first["config"]["id"], "environments": [{"id": staging, "name": "staging"}]}
    assert http.patch(f"/projects/{project_id}/deploy-config", json=back).status_code == 200
    assert environments(http, project_id)["staging"]["model_config_id"] == first["config"]["id"]

    active = http.get(f"/projects/{project_id}/active-config", params={"environment": "development"}).json()
    assert active["config"]["id"] == second["config"]["id"] and active["environment_id"] == development

    removed = http.delete(f"/projects/{project_id}/deployed-config/{development}")
    assert removed.status_code == 200
    assert {e["environment_name"]: e["model_config_id"] for e in removed.json()}["development"] is None
    # removing again is a no-op
    assert http.delete(f"/projects/{project_id}/deployed-config/{development}").status_code == 200
    missing = http.get(f"/projects/{project_id}/active-config", params={"environment": "development"})
    assert missing.status_code == 404


def test_deploy_errors(http: httpx.Client, envs_server: Server) -> None:
    mine = register(http, unique("deperr"))
    project_id, config_id = mine["project_id"], mine["config"]["id"]
    elsewhere = register(http, unique("deperr"), temperature=0.5)["config"]["id"]
    production = environments(http, project_id)["production"]["environment_id"]
    url = f"/projects/{project_id}/deploy-config"
    assert http.patch(url, json={"config_id": "config_nope0000000000000"}).status_code == 404
    assert http.patch(url, json={"config_id": elsewhere}).status_code == 422  # another project's version
    assert (
        http.patch(url, json={"config_id": config_id, "environments": [{"id": "env_nope"}]}).status_code
        == 404
    )
    wrong_name = {"config_id": config_id, "environments": [{"id": production, "name": "staging"}]}
    assert http.patch(url, json=wrong_name).status_code == 422
    assert http.patch(url, json={"environments": []}).status_code == 422
    assert http.delete(f"/projects/{project_id}/deployed-config/env_nope").status_code == 404
    assert http.get(f"/projects/{project_id}/active-config", params={"environment": "qa"}).status_code == 404
    # another organization can neither see nor deploy
    with envs_server.client(envs_server.create_key(org=unique("org"))) as stranger:
        assert stranger.get(f"/projects/{project_id}/deployed-configs").status_code == 404
        assert stranger.patch(url, json={"config_id": config_id}).status_code == 404
        assert stranger.delete(f"/projects/{project_id}/deployed-config/{production}").status_code == 404
        theirs = stranger.post("/projects", json={"name": unique()}).json()
        assert (
            stranger.patch(
                f"/projects/{theirs['id']}/deploy-config", json={"config_id": config_id}
            ).status_code
            == 404
        )
        chat = stranger.post(
            "/chat-model-config",
            json={"model_config_id": config_id, "messages": [{"role": "user", "content": "x"}]},
        )
        assert chat.status_code == 404


def test_active_config_deactivate_and_patch(http: httpx.Client) -> None:
    first = register(http, unique("active"))
    project_id = first["project_id"]
    assert (
        http.get(f"/projects/{project_id}").json()["active_config"]["config"]["id"] == first["config"]["id"]
    )
    response = http.delete(f"/projects/{project_id}/active-config")
    assert response.status_code == 200
    assert response.json()["id"] == project_id and response.json()["active_config"] is None
    assert http.delete(f"/projects/{project_id}/active-config").status_code == 200  # no-op
    assert http.get(f"/projects/{project_id}/active-config").status_code == 404
    patched = http.patch(f"/projects/{project_id}", json={"active_config_id": first["config"]["id"]}).json()
    assert patched["active_config"]["config"]["id"] == first["config"]["id"]
    # only the first registered config becomes active by itself
    register(http, first["project_name"], temperature=0.4)
    assert http.get(f"/projects/{project_id}/active-config").json()["config"]["id"] == first["config"]["id"]


def test_chat_deployed_runs_the_deployed_config_and_tags_the_log(
    http: httpx.Client, envs_server: Server
) -> None:
    name = unique("chatdep")
    template = [{"role": "system", "content": "You are {{who}}."}]
    prod = register(http, name, chat_template=template)
    staging_config = register(http, name, chat_template=template, temperature=0.5)["config"]["id"]
    project_id = prod["project_id"]
    staging = environments(http, project_id)["staging"]["environment_id"]
    http.patch(
        f"/projects/{project_id}/deploy-config",
        json={"config_id": staging_config, "environments": [{"id": staging}]},
    )
    body = {"project": name, "inputs": {"who": "Ada"}, "messages": [{"role": "user", "content": "hi"}]}
    default = http.post("/chat-deployed", json=body)
    assert default.status_code == 200, default.text
    item = default.json()["data"][0]
    assert item["model_config_id"] == prod["config"]["id"]
    assert item["messages"][0] == {
        "content": "You are Ada.",
        "name": None,
        "tool_call_id": None,
        "role": "system",
        "tool_calls": None,
        "tool_call": None,
    }
    assert item["output"] == "This is a mock response to: hi"
    assert log_row(envs_server.database, item["id"])["environment"] == "production"

    on_staging = http.post(
        "/chat-deployed", json={**body, "project": None, "project_id": project_id, "environment": "staging"}
    ).json()
    assert on_staging["data"][0]["model_config_id"] == staging_config
    assert on_staging["provider_request"]["temperature"] == 0.5
    assert log_row(envs_server.database, on_staging["data"][0]["id"])["environment"] == "staging"

    stream = http.post("/chat-deployed", json={**body, "stream": True})
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = sse_events(stream.text)
    assert "".join(e["data"][0]["output"] for e in events) == "This is a mock response to: hi"
    assert events[-1]["data"][0]["finish_reason"] == "stop"
    assert events[-1]["data"][0]["model_config_id"] == prod["config"]["id"]


def test_chat_deployed_errors(http: httpx.Client) -> None:
    message = [{"role": "user", "content": "hi"}]
    never = http.post("/chat-deployed", json={"project": unique("nothing-here"), "messages": message})
    assert never.status_code == 404 and "not found" in never.json()["detail"]
    bare = http.post("/projects", json={"name": unique("bare")}).json()
    nothing = http.post("/chat-deployed", json={"project_id": bare["id"], "messages": message})
    assert nothing.status_code == 404 and "No model config is deployed" in nothing.json()["detail"]
    registered = register(http, unique("deperr2"))
    unknown_env = http.post(
        "/chat-deployed",
        json={"project": registered["project_name"], "environment": "qa", "messages": message},
    )
    assert unknown_env.status_code == 404 and "qa" in unknown_env.json()["detail"]
    assert http.post("/chat-deployed", json={"messages": message}).status_code == 422
    assert http.post("/chat-deployed", json={"project": "x"}).status_code == 422  # messages required


def test_chat_model_config_by_id(http: httpx.Client, envs_server: Server) -> None:
    registered = register(http, unique("bycfg"), chat_template=[{"role": "system", "content": "S"}])
    config_id = registered["config"]["id"]
    body = {"model_config_id": config_id, "messages": [{"role": "user", "content": "yo"}]}
    response = http.post("/chat-model-config", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["project_id"] == registered["project_id"]
    assert payload["data"][0]["model_config_id"] == config_id
    assert [m["content"] for m in payload["data"][0]["messages"]] == ["S", "yo"]
    assert payload["tool_choice"] is None and payload["logprobs"] is None

    # run in another project: the same parameters become (or find) that project's version
    other = unique("bycfg-other")
    moved = http.post("/chat-model-config", json={**body, "project": other}).json()
    moved_config = moved["data"][0]["model_config_id"]
    assert moved["project_id"] != registered["project_id"] and moved_config != config_id
    again = http.post("/chat-model-config", json={**body, "project": other}).json()
    assert again["data"][0]["model_config_id"] == moved_config
    rows = db_rows(envs_server.database, "SELECT project_id FROM model_configs WHERE id = ?", moved_config)
    assert rows[0]["project_id"] == moved["project_id"]

    missing = http.post("/chat-model-config", json={**body, "model_config_id": "config_nope00000000000"})
    assert missing.status_code == 404
    assert http.post("/chat-model-config", json={"messages": body["messages"]}).status_code == 422


def test_environment_names_are_parsed_from_settings(tmp_path: Path) -> None:
    from loopgate.config import Settings

    assert Settings(environments=" staging, development,staging,").environment_names == [
        "staging",
        "development",
    ]
    assert Settings().environment_names == []
