"""Projects, model configs, deployments and the generation variants driven by the official humanloop SDK
0.7.35, end to end (``hl.projects.*``, ``hl.model_configs.*``, ``hl.chat_deployed``,
``hl.chat_model_config``, ``hl.complete``, ``hl.complete_stream``, ...).

The scenarios in ``sdk_projects_scenarios.py`` run as one subprocess with the SDK's interpreter against the
session's ``loopgate serve`` and record what the SDK handed back; these tests assert on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_scenarios
from tests.e2e.test_sdk_chat import CONFIG_ID, LOG_ID, log_rows
from tests.helpers import MOCK_REPLY

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgresql")]

SCRIPT = Path(__file__).with_name("sdk_projects_scenarios.py")
PROJECT_ID = re.compile(r"^pr_[A-Za-z0-9]{21}$")
ENVIRONMENT_ID = re.compile(r"^env_[A-Za-z0-9]{21}$")


@pytest.fixture(scope="module")
def sdk(server: Server) -> dict[str, Any]:
    return run_scenarios(SCRIPT, server, "all")


def test_projects_create_get_list_update_delete(sdk: dict[str, Any]) -> None:
    got = result(sdk, "projects")
    created, attributes = got["created"], got["attributes"]
    assert PROJECT_ID.match(attributes["id"]) and attributes["team_id"].startswith("tm_")
    assert attributes["data_count"] == 0 and attributes["users"] == []
    assert created["active_config"] is None
    assert [t["type"] for t in created["feedback_types"]] == [
        "rating",
        "action",
        "issue",
        "correction",
        "comment",
    ]
    assert got["got"]["id"] == attributes["id"] and got["got"]["name"] == created["name"]

    renamed = got["renamed"]
    assert renamed["name"] == created["name"] + "-renamed" and renamed["directory_id"] == "dir_e2e"

    # three projects carry this run's tag: sorted by name, two per page
    listed, second = got["listed"], got["second_page"]
    assert (listed["page"], listed["size"], listed["total"]) == (0, 2, 3)
    assert got["list_attributes"]["total"] == 3
    names = got["list_attributes"]["names"] + [p["name"] for p in second["records"]]
    assert names == sorted(names) and renamed["name"] in names and len(set(names)) == 3

    assert got["feedback_type"] == {"type": "tone", "values": [{"value": "warm", "sentiment": "positive"}]}
    assert got["feedback_types_after"][-1] == "tone"
    assert got["duplicate"]["status"] == 409 and "already exists" in got["duplicate"]["body"]["detail"]
    assert got["deleted"] is None  # 204: the SDK returns nothing
    assert got["gone"]["status"] == 404


def test_model_configs_register_get_and_prompt_files(sdk: dict[str, Any]) -> None:
    got = result(sdk, "model_configs")
    registered = got["registered"]
    config = registered["config"]
    assert CONFIG_ID.match(config["id"]) and config["name"] == "reg-v1"
    assert config["type"] == "model" and config["endpoint"] == "chat" and config["temperature"] == 0.4
    assert got["again"]["config"]["id"] == config["id"]  # same parameters: same version
    assert got["newer"]["config"]["id"] != config["id"]
    assert (
        got["got"]["id"] == config["id"]
        and got["got"]["chat_template"][0]["content"] == "You are {{persona}}."
    )

    configs = got["configs"]
    assert [c["config"]["id"] for c in configs] == [config["id"], got["newer"]["config"]["id"]]
    assert all(c["project_id"] == registered["project_id"] for c in configs)
    # the first registered config is the active one
    assert got["active"]["config"]["id"] == config["id"]
    assert ENVIRONMENT_ID.match(got["active"]["environment_id"])

    assert got["exported"].startswith("---\nmodel: mock-1\n")
    assert "<system>\n  You are {{persona}}.\n</system>\n" in got["exported"]
    serialized = got["serialized"]
    assert isinstance(serialized, str) and "model: gpt-4o" in serialized and "endpoint: chat" in serialized
    back = got["deserialized"]
    assert back["model"] == "gpt-4o" and back["temperature"] == 0.7 and back["provider"] == "openai"
    assert [(m["role"], m["content"]) for m in back["chat_template"]] == [("system", "You are {{persona}}.")]
    assert got["missing"]["status"] == 404


def test_deployments_drive_chat_deployed_and_chat_model_config(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "deployments")
    first_id, second_id = got["first"]["config"]["id"], got["second"]["config"]["id"]
    (production,) = [env for env in got["environments"] if env["environment_tag"] == "default"]
    assert production["environment_name"] == "production" and production["model_config_id"] == first_id
    assert ENVIRONMENT_ID.match(production["environment_id"])

    deployed = {env["environment_name"]: env["model_config_id"] for env in got["deployed"]}
    assert deployed["production"] == second_id

    chat = got["chat"]
    (item,) = chat["data"]
    assert item["model_config_id"] == second_id == got["chat_attributes"]["model_config_id"]
    assert item["output"] == MOCK_REPLY + "which one?" == got["chat_attributes"]["output"]
    assert item["messages"][0]["content"] == "You are Grace."
    row = log_rows(server, item["id"])[item["id"]]
    assert row["environment"] == "production" and row["config_id"] == second_id

    by_id = got["by_id"]["data"][0]
    assert by_id["model_config_id"] == first_id and by_id["messages"][0]["content"] == "You are Alan."
    assert got["by_id"]["project_id"] == got["first"]["project_id"]

    chunks = got["streamed"]
    assert "".join(chunk["output"] or "" for chunk in chunks) == MOCK_REPLY + "stream it"
    assert chunks[-1]["finish_reason"] == "stop" and chunks[-1]["model_config_id"] == second_id
    assert len({chunk["id"] for chunk in chunks}) == 1 and LOG_ID.match(chunks[0]["id"])

    assert got["deactivated"]["active_config"] is None
    assert got["nothing_deployed"]["status"] == 404
    assert "No model config is deployed" in got["nothing_deployed"]["body"]["detail"]
    # deploy-config without environments targets the default one
    assert [env["model_config_id"] for env in got["redeployed"] if env["environment_tag"] == "default"] == [
        first_id
    ]
    assert all(env["model_config_id"] is None for env in got["removed"])


def test_complete_complete_stream_and_the_completion_variants(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "completions")
    completed = got["completed"]
    expected = MOCK_REPLY + "Tell me about tides."
    assert got["attributes"]["outputs"] == [expected, expected + " (sample 2)"]
    assert got["attributes"]["suffix"] == "THE END" and got["attributes"]["logprobs"] == 1
    assert CONFIG_ID.match(got["attributes"]["model_config_id"])
    assert completed["provider_request"]["messages"] == [{"role": "user", "content": "Tell me about tides."}]
    assert completed["user"] == "e2e-user" and completed["num_samples"] == 2
    assert [item["index"] for item in completed["data"]] == [0, 1]
    assert all(item["inputs"] == {"topic": "tides"} for item in completed["data"])
    rows = log_rows(server, *(item["id"] for item in completed["data"]))
    assert sorted(row["output"] for row in rows.values()) == [expected, expected + " (sample 2)"]

    chunks = got["chunks"]
    assert len(chunks) == len(expected.split(" ")) + 1  # one per word, then the final one
    assert "".join(chunk["output"] or "" for chunk in chunks) == expected
    assert [chunk["finish_reason"] for chunk in chunks][-1] == "stop"
    assert all(chunk["finish_reason"] is None for chunk in chunks[:-1])
    assert all(chunk["output_message"] is None for chunk in chunks)  # completions carry no messages
    (stream_id,) = {chunk["id"] for chunk in chunks}
    assert log_rows(server, stream_id)[stream_id]["output"] == expected

    registered_id = got["registered"]["config"]["id"]
    assert got["registered"]["config"]["endpoint"] == "complete"
    assert got["deployed"]["data"][0]["model_config_id"] == registered_id
    assert got["deployed"]["data"][0]["output"] == MOCK_REPLY + "Tell me about rivers."
    assert got["by_id"]["data"][0]["model_config_id"] == registered_id
    assert got["by_id"]["data"][0]["output"] == MOCK_REPLY + "Tell me about lakes."
    missing = got["missing_input"]
    assert missing["status"] == 422 and missing["body"]["detail"][0]["loc"] == ["body", "inputs", "topic"]
