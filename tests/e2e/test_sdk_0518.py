"""The older humanloop Python SDK 0.5.18, end to end: what its users do most.

The scenarios in ``sdk_0518_scenarios.py`` run once, in one process with that SDK's interpreter
(``make .venv-sdk-0518/.installed``), against the session's ``loopgate serve``; these tests check what the
SDK handed back and, over HTTP, that the server stored it where it belongs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import SDK_0518_PYTHON, result, run_scenarios
from tests.helpers import MOCK_REPLY

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgresql")]

SCRIPT = Path(__file__).with_name("sdk_0518_scenarios.py")
LOG_ID = re.compile(r"^data_[A-Za-z0-9]{21}$")
SESSION_ID = re.compile(r"^sesh_[A-Za-z0-9]+$")


@pytest.fixture(scope="module")
def sdk(server: Server) -> dict[str, Any]:
    """Every scenario, run once in one SDK process (importing the SDK takes a while)."""
    return run_scenarios(SCRIPT, server, "all", python=SDK_0518_PYTHON)


def stored(server: Server, path: str) -> Any:
    """What the server says over HTTP (a stored log, session or project)."""
    with server.client() as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_chat_answers_in_body_data_and_stores_the_log(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "chat")
    assert got["status"] == 200
    assert got["output"] == MOCK_REPLY + "Who are you?"
    (item,) = got["body"]["data"]
    assert LOG_ID.match(item["id"])
    assert item["inputs"] == {"person": "Ada"}
    assert [(m["role"], m["content"]) for m in item["messages"]] == [
        ("system", "You are Ada."),
        ("user", "Who are you?"),
    ]

    log = stored(server, f"/logs/{item['id']}")
    assert log["project_id"] == got["body"]["project_id"]
    assert log["output"] == got["output"]
    assert log["config"]["id"] == item["model_config_id"] and log["config"]["temperature"] == 0.2


def test_stream_items_join_to_the_plain_answer(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "stream")
    plain_item = got["plain"]["data"][0]
    items = got["items"]
    # 0.5.18 keeps only {output, id} and silently drops events lacking either: every event must carry both.
    assert all(set(item) == {"output", "id"} for item in items)
    assert len(items) > 2
    assert "".join(item["output"] for item in items) == plain_item["output"]
    (stream_id,) = {item["id"] for item in items}
    assert LOG_ID.match(stream_id) and stream_id != plain_item["id"]

    log = stored(server, f"/logs/{stream_id}")
    assert log["output"] == plain_item["output"]
    assert log["project_id"] == got["plain"]["project_id"]


def test_chats_nest_in_a_session_by_reference_and_parent(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "nesting")
    first, second, child = (got[key]["data"][0] for key in ("first", "second", "child"))
    session_id = got["first"]["session_id"]
    assert SESSION_ID.match(session_id)
    assert got["second"]["session_id"] == got["child"]["session_id"] == session_id

    session = stored(server, f"/sessions/{session_id}")
    assert session["datapoints_count"] == 3
    assert session["last_output"] == child["output"] == MOCK_REPLY + "nested"
    assert [p["id"] for p in session["projects"]] == [got["first"]["project_id"]]
    assert stored(server, f"/logs/{child['id']}")["parent_id"] == first["id"]
    assert stored(server, f"/logs/{second['id']}")["parent_id"] is None


def test_registered_config_answers_by_id_and_as_the_deployment(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "deployed")
    config = got["registered"]["config"]
    assert config["provider"] == "mock" and config["chat_template"][0]["content"] == "You are {{person}}."
    project_id = got["registered"]["project_id"]

    by_config = got["by_config"]["data"][0]
    assert by_config["model_config_id"] == config["id"]
    assert by_config["output"] == MOCK_REPLY + "by config"
    assert by_config["messages"][0]["content"] == "You are Grace."

    # the first config registered in a project is what chat_deployed runs
    by_deployment = got["by_deployment"]["data"][0]
    assert by_deployment["model_config_id"] == config["id"]
    assert by_deployment["messages"][0]["content"] == "You are Alan."
    for item in (by_config, by_deployment):
        log = stored(server, f"/logs/{item['id']}")
        assert (log["project_id"], log["output"]) == (project_id, item["output"])


def test_complete_renders_the_prompt_template(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "complete")
    (item,) = got["data"]
    assert item["output"] == MOCK_REPLY + "Say hello."
    assert item["inputs"] == {"word": "hello"}
    assert stored(server, f"/logs/{item['id']}")["project_id"] == got["project_id"]


def test_log_a_call_made_elsewhere_then_rate_it(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "log_and_feedback")
    log_id = got["log_id"]
    assert LOG_ID.match(log_id)
    assert got["feedback"]["data_id"] == log_id and got["feedback"]["value"] == "good"

    log = stored(server, f"/logs/{log_id}")
    assert log["project_id"] == got["logged"]["project_id"]
    assert (log["output"], log["inputs"], log["source"]) == ("4", {"question": "2+2"}, "elsewhere")
    assert [(m["role"], m["content"]) for m in log["messages"]] == [("user", "What is 2+2?")]
    assert [(f["type"], f["value"]) for f in log["feedback"]] == [("rating", "good")]


def test_projects_create_list_get(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "projects")
    created = got["created"]
    assert created["id"].startswith("pr_")
    assert [record["id"] for record in got["listed"]["records"]] == [created["id"]]
    assert got["got"]["id"] == created["id"] and got["got"]["name"] == created["name"]
    assert stored(server, f"/projects/{created['id']}")["name"] == created["name"]
