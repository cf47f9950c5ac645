"""Logs, feedback and sessions driven by the official humanloop SDK 0.7.35, end to end.

The scenarios in ``sdk_logs_scenarios.py`` run as one subprocess in the SDK's virtualenv against the
session's ``loopgate serve`` and record what the SDK handed back; these tests assert on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_scenarios
from tests.e2e.test_sdk_chat import CONFIG_ID, LOG_ID, SESSION_ID, log_rows
from tests.helpers import MOCK_REPLY

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgresql")]

SCRIPT = Path(__file__).with_name("sdk_logs_scenarios.py")


@pytest.fixture(scope="module")
def sdk(server: Server) -> dict[str, Any]:
    """Every scenario, run once in one SDK process."""
    return run_scenarios(SCRIPT, server, "all")


# -- logs ----------------------------------------------------------------------------------------------


def test_log_get_update_list_export_delete(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "log_lifecycle")
    created, log = got["created"], got["got"]
    assert LOG_ID.match(created["id"]) and created["project_id"].startswith("pr_")
    assert created["session_id"] is None
    assert [LOG_ID.match(item["id"]) is not None for item in got["batch"]] == [True, True]

    assert log["id"] == created["id"] and log["project_id"] == created["project_id"]
    assert log["inputs"] == {"city": "Oslo"} and log["output"] == "Rainy"
    assert [(m["role"], m["content"]) for m in log["messages"]] == [("user", "Weather in Oslo?")]
    assert log["metadata"] == {"team": "weather"} and log["source"] == "sdk"
    assert (log["prompt_tokens"], log["output_tokens"], log["tokens"]) == (5, 2, 7)
    assert log["provider_response"] == {"id": "upstream-1"}
    assert log["config"]["type"] == "model" and CONFIG_ID.match(log["config"]["id"])
    assert log["config"]["temperature"] == 0.1
    assert log["evaluation_results"] == [] and log["observability_status"] == "completed"
    assert [(f["type"], f["value"]) for f in log["feedback"]] == [("rating", "good")]
    assert got["attributes"] == {
        "output": "Rainy",
        "config_model": "mock-1",
        "config_type": "model",
        "feedback_value": "good",
        "tokens": 7,
        "created_at": "2024-01-02T03:04:05+00:00",  # a naive datetime from the SDK is taken as UTC
    }

    assert got["by_reference"]["output"] == "Sunny" and got["by_reference"]["duration"] == 0.5
    by_id = got["by_id"]
    assert (by_id["output"], by_id["error"], by_id["duration"]) == ("Sunny", "late error", 1.25)

    first, second = got["first_page"], got["second_page"]
    assert (first["page"], first["size"], first["total"]) == (0, 2, 3)
    batch_ids = [item["id"] for item in got["batch"]]
    assert [r["id"] for r in first["records"]] == batch_ids[::-1]  # newest first; the first log is back-dated
    assert [r["id"] for r in second["records"]] == [created["id"]]
    assert got["searched"] == [created["id"]]
    assert got["dated"] == [created["id"]]
    assert got["exported"]["total"] == 3 and got["exported"]["size"] == 10
    assert [r["id"] for r in got["exported"]["records"]] == [*batch_ids[::-1], created["id"]]

    assert got["deleted"] is None
    assert [error["status"] for error in got["gone"]] == [404, 404]
    assert got["after"] == [created["id"]]
    assert set(log_rows(server, created["id"], *batch_ids)) == {created["id"]}


def test_log_errors(sdk: dict[str, Any]) -> None:
    errors = result(sdk, "log_errors")
    assert errors["reused_reference"]["status"] == 409
    assert "already used" in errors["reused_reference"]["body"]["detail"]
    assert errors["no_config"]["status"] == 422
    assert errors["no_config"]["body"]["detail"][0]["loc"] == ["body", "config"]
    for case in ("unknown_config", "unknown_log", "unknown_reference", "unknown_project"):
        assert errors[case]["status"] == 404, case
        assert isinstance(errors[case]["body"]["detail"], str)


# -- feedback ------------------------------------------------------------------------------------------


def test_feedback_one_many_and_unset(sdk: dict[str, Any]) -> None:
    got = result(sdk, "feedback")
    one = got["one"]
    assert one["id"].startswith("ann_") and one["type"] == "rating" and one["value"] == "good"
    assert one["user"] == "reviewer@example.com"
    assert [(f["type"], f["value"]) for f in got["many"]] == [
        ("comment", "Clear answer"),
        ("action", ["copied"]),
    ]
    assert [f["id"] for f in got["before_unset"]] == [one["id"], *(f["id"] for f in got["many"])]
    assert got["unset"]["type"] == "rating" and got["unset"]["value"] == []
    assert [f["type"] for f in got["after_unset"]] == ["comment", "action"]
    for case, field in (("bad_label", "value"), ("unknown_type", "type")):
        assert got[case]["status"] == 422
        assert got[case]["body"]["detail"][0]["loc"] == ["body", field]
    assert got["unknown_log"]["status"] == 404


# -- sessions ------------------------------------------------------------------------------------------


def test_sessions_create_get_list(sdk: dict[str, Any]) -> None:
    got = result(sdk, "sessions")
    session_id = got["created"]["id"]
    assert SESSION_ID.match(session_id)
    assert got["empty"]["datapoints_count"] == 0 and got["empty"]["projects"] == []
    logs = got["logs"]
    assert logs["first"]["session_id"] == logs["second"]["session_id"] == session_id

    session = got["got"]
    assert session["id"] == session_id and session["datapoints_count"] == 2
    assert [p["id"] for p in session["projects"]] == [logs["first"]["project_id"]]
    assert session["first_inputs"] == {"turn": 1} and session["last_output"] == "two"

    listed = got["listed"]
    assert (listed["page"], listed["size"], listed["total"]) == (1, 10, 2)
    assert [s["id"] for s in listed["records"]] == [logs["other"]["session_id"], session_id]
    assert [s["id"] for s in got["paged"]["records"]] == [session_id]
    assert got["missing"]["status"] == 404


def test_session_tree_with_a_deferred_parent_child_chats_and_feedback(sdk: dict[str, Any]) -> None:
    got = result(sdk, "session_tree")
    references = got["references"]
    parent = got["parent"]
    session_id = parent["session_id"]
    assert SESSION_ID.match(session_id)
    children = [child["data"][0] for child in got["children"]]
    assert [child["session_id"] for child in got["children"]] == [session_id, session_id]
    assert [child["output"] for child in children] == [
        MOCK_REPLY + "find flights",
        MOCK_REPLY + "find hotels",
    ]
    assert got["updated"]["id"] == parent["id"] and got["updated"]["output"] == "trip planned"
    assert got["feedback"]["data_id"] == children[1]["id"]

    session = got["session"]
    assert session["reference_id"] == references["session"]
    assert session["datapoints_count"] == 3
    assert session["first_inputs"] == {"goal": "plan a trip"}
    assert session["last_output"] == children[1]["output"]

    # the tree, rebuilt from the session's datapoints
    nodes = {point["id"]: point for point in got["datapoints"]}
    kids: dict[str | None, list[str]] = {}
    for point in got["datapoints"]:
        kids.setdefault(point["parent_id"], []).append(point["id"])
    assert kids == {None: [parent["id"]], parent["id"]: [children[0]["id"], children[1]["id"]]}
    root = nodes[parent["id"]]
    assert root["reference_id"] == references["parent"] and root["output"] == "trip planned"
    assert root["config"]["name"] == "planner"
    for child, log in zip(children, got["child_logs"], strict=True):
        node = nodes[child["id"]]
        assert node["parent_reference_id"] == references["parent"]
        assert node["session_reference_id"] == references["session"]
        assert node["output"] == child["output"] == log["output"]
        assert log["parent_id"] == parent["id"] and log["messages"][-1]["role"] == "user"
        assert node["config"]["id"] == child["model_config_id"]
    assert [f["value"] for f in nodes[children[1]["id"]]["feedback"]] == ["good"]
    assert nodes[children[0]["id"]]["feedback"] == []
