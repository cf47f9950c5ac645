"""The rest of the v4 surface driven by the official humanloop TypeScript SDK 0.5.36, end to end.

``tests/e2e/ts/surface_scenarios.mjs`` runs once under node against the session's ``loopgate serve``
(SQLite, mock provider): projects, model configs, deployments with ``chatDeployed`` and
``chatModelConfiguration`` (0.5.x's name for ``/chat-model-config``), completions, logs, feedback, sessions,
datasets and datapoints, evaluators and a client-run evaluation. Most of these calls send a body that repeats
the path's parameters (``{"id": ...}`` to ``PATCH /projects/{id}``): see tests/test_path_echo.py. The tests
assert on what the SDK handed back and read the server's state back over HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_ts_scenarios
from tests.helpers import MOCK_REPLY

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ts(server: Server) -> dict[str, Any]:
    """Every scenario, run once in one node process."""
    return run_ts_scenarios("surface_scenarios.mjs", server, "all")


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def joined(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["output"] or "" for chunk in chunks)


def test_projects(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "projects")
    created = got["created"]
    assert created["id"].startswith("pr_")
    assert got["got"]["name"] == created["name"]
    assert got["renamed"]["name"] == created["name"] + "-renamed"
    # filtered by the run's tag, sorted by name, two per page
    listed, second = got["listed"], got["second_page"]
    assert listed["total"] == 3
    names = [p["name"] for p in listed["records"] + second["records"]]
    assert names == sorted(names)
    assert len(listed["records"]) == 2
    assert created["name"] + "-renamed" in names
    assert got["feedback_type"]["type"] == "tone"
    assert created["feedback_types"][-1] == {"type": "mood", "values": None}
    assert got["feedback_types_after"][-2:] == ["mood", "tone"]
    assert got["duplicate"]["status"] == 409
    assert got["deleted_status"] == 204
    assert got["gone"]["status"] == 404
    assert client.get(f"/projects/{created['id']}").status_code == 404


def test_model_configs(ts: dict[str, Any]) -> None:
    got = result(ts, "model_configs")
    config = got["registered"]["config"]
    assert (config["name"], config["endpoint"], config["temperature"]) == ("reg-v1", "chat", 0.4)
    assert got["again"]["config"]["id"] == config["id"]  # same parameters: same version
    assert got["newer"]["config"]["id"] != config["id"]
    assert got["got"]["id"] == config["id"]
    ids = [c["config"]["id"] for c in got["configs"]]
    assert ids == [config["id"], got["newer"]["config"]["id"]]
    assert got["configs_custom"] == got["configs"]  # hl.listConfigs, the SDK's own wrapper
    assert got["active"]["config"]["id"] == config["id"]
    assert got["exported"].startswith("---\nmodel: mock-1\n")
    assert "You are {{persona}}." in got["exported"]
    back = got["deserialized"]
    assert (back["model"], back["provider"], back["temperature"]) == ("gpt-4o", "openai", 0.7)
    assert got["missing"]["status"] == 404


def test_deployments_drive_chat_deployed_and_chat_model_configuration(
    ts: dict[str, Any], client: httpx.Client
) -> None:
    got = result(ts, "deployments")
    first_id, second_id = got["first"]["config"]["id"], got["second"]["config"]["id"]
    (production,) = [env for env in got["environments"] if env["environment_tag"] == "default"]
    assert production["model_config_id"] == first_id
    assert {env["environment_name"]: env["model_config_id"] for env in got["deployed"]}[
        "production"
    ] == second_id

    (item,) = got["chat"]["data"]
    assert item["model_config_id"] == second_id
    assert item["output"] == MOCK_REPLY + "which one?"
    assert item["messages"][0]["content"] == "You are Grace."
    assert get(client, f"/logs/{item['id']}")["environment"] == "production"

    by_id = got["by_id"]["data"][0]
    assert by_id["model_config_id"] == first_id
    assert by_id["messages"][0]["content"] == "You are Alan."

    for chunks, config_id, text in (
        (got["streamed"], second_id, "stream it"),
        (got["streamed_by_id"], first_id, "stream by id"),
    ):
        assert joined(chunks) == MOCK_REPLY + text
        assert chunks[-1]["finish_reason"] == "stop"
        assert {chunk["model_config_id"] for chunk in chunks} == {config_id}
        (log_id,) = {chunk["id"] for chunk in chunks}
        assert get(client, f"/logs/{log_id}")["output"] == MOCK_REPLY + text

    assert got["deactivated"]["active_config"] is None
    assert got["nothing_deployed"]["status"] == 404
    assert [env["model_config_id"] for env in got["redeployed"] if env["environment_tag"] == "default"] == [
        first_id
    ]
    assert all(env["model_config_id"] is None for env in got["removed"])


def test_completions_plain_streamed_deployed_and_by_config(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "completions")
    expected = MOCK_REPLY + "Tell me about tides."
    completed = got["completed"]
    assert [item["output"] for item in completed["data"]] == [expected, expected + " (sample 2)"]
    assert (completed["suffix"], completed["logprobs"], completed["user"]) == ("THE END", 1, "e2e-user")

    # the stream gives the same text as the plain call, one chunk per word and a final one
    chunks = got["chunks"]
    assert got["plain"]["data"][0]["output"] == expected
    assert len(chunks) == len(expected.split(" ")) + 1
    assert joined(chunks) == expected
    assert [chunk["finish_reason"] for chunk in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    (stream_id,) = {chunk["id"] for chunk in chunks}
    assert get(client, f"/logs/{stream_id}")["output"] == expected

    registered_id = got["registered"]["config"]["id"]
    for body, chunks, topic in (
        (got["deployed"], got["deployed_chunks"], "rivers"),
        (got["by_id"], got["by_id_chunks"], "lakes"),
    ):
        text = MOCK_REPLY + f"Tell me about {topic}."
        assert (body["data"][0]["model_config_id"], body["data"][0]["output"]) == (registered_id, text)
        assert joined(chunks) == text
        assert {chunk["model_config_id"] for chunk in chunks} == {registered_id}
    assert got["missing_input"]["body"]["detail"][0]["loc"] == ["body", "inputs", "topic"]


def test_logs_made_elsewhere_updated_listed_and_deleted(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "logs")
    created = got["created"]
    assert created["id"].startswith("data_")
    assert [item["project_id"] for item in got["batch"]] == [created["project_id"]] * 2
    assert got["by_reference"]["output"] == "Sunny"
    assert (got["by_id"]["error"], got["by_id"]["duration"]) == ("late error", 1.25)
    assert got["first_page"]["total"] == 3
    assert len(got["first_page"]["records"]) == len(got["second_page"]["records"]) + 1 == 2
    assert got["searched"] == got["dated"] == got["metadata"] == [created["id"]]
    # the SDK's own page walk: every log once, then the one empty page its hasNext() asks for
    assert [len(page) for page in got["walked"]] == [2, 1, 0]
    walked = [log_id for page in got["walked"] for log_id in page]
    assert sorted(walked) == sorted([created["id"], *(item["id"] for item in got["batch"])])
    assert {record["id"] for record in got["exported"]["records"]} == {created["id"]} | {
        item["id"] for item in got["batch"]
    }
    assert got["deleted_status"] == 204
    assert got["after"] == [created["id"]]
    assert got["unknown_reference"]["status"] == 404

    log = get(client, f"/logs/{created['id']}")
    assert (log["output"], log["error"]) == ("Sunny", "late error")
    assert log["reference_id"].startswith("e2e-ts-ref-")
    assert log["inputs"] == {"city": "Oslo"}
    assert log["metadata"] == {"team": "weather"}
    assert log["created_at"].startswith("2024-01-02T03:04:05")
    assert [(f["type"], f["value"]) for f in log["feedback"]] == [("rating", "good")]
    for item in got["batch"]:
        assert client.get(f"/logs/{item['id']}").status_code == 404


def test_feedback(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "feedback")
    assert got["one"]["id"].startswith("ann_")
    assert (got["one"]["value"], got["one"]["user"]) == ("good", "reviewer@example.com")
    assert [(f["type"], f["value"]) for f in got["many"]] == [
        ("comment", "Clear answer"),
        ("action", ["copied"]),
    ]
    assert got["unset"]["type"] == "rating"
    assert got["bad_label"]["status"] == 422
    assert got["unknown_log"]["status"] == 404
    kinds = {f["type"] for f in get(client, f"/logs/{got['log_id']}")["feedback"]}
    assert kinds == {"comment", "action"}  # the rating was unset


def test_sessions(ts: dict[str, Any]) -> None:
    got = result(ts, "sessions")
    session_id = got["created"]["id"]
    assert session_id.startswith("sesh_")
    assert got["first"]["session_id"] == got["second"]["session_id"] == session_id
    assert got["child"]["session_id"] == session_id  # a chat joins its parent's session
    tree = {log["id"]: log["parent_id"] for log in got["got"]["datapoints"]}
    child_id = got["child"]["data"][0]["id"]
    assert tree == {
        got["first"]["id"]: None,
        got["second"]["id"]: got["first"]["id"],
        child_id: got["second"]["id"],
    }
    assert [record["id"] for record in got["listed"]["records"]] == [session_id]
    assert got["missing"]["status"] == 404


def test_datasets_and_datapoints(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "datasets")
    created = got["created"]
    assert created["project_id"] == got["project_id"]
    ((one,), many, (copied,)) = got["one"], got["many"], got["from_logs"]
    assert one["target"] == {"answer": "Paris"}
    assert [point["inputs"] for point in many] == [{"city": "Rome"}, {}]
    assert copied["inputs"] == {"city": "Oslo"}
    assert copied["target"]["output"] == MOCK_REPLY + "Where is it?"
    assert got["page"]["total"] == 4
    assert len(got["page"]["records"]) == 3
    assert got["updated"]["name"] == got["got"]["name"] == "golden-v2"
    assert got["datapoint"] == one
    assert got["datapoint_updated"]["target"] == {"answer": "Rome"}
    assert [dataset["id"] for dataset in got["listed"]] == [created["id"]]
    assert got["datapoints_deleted_status"] == 204
    assert got["after_delete"] == [one["id"], many[0]["id"], copied["id"]]
    assert got["gone"]["status"] == 404
    assert client.get(f"/datapoints/{one['id']}").status_code == 404


def test_a_client_run_evaluation(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "evaluations")
    exact = got["exact"]
    assert got["renamed"]["description"] == "output equals the answer"
    assert exact["id"] in got["evaluators"]
    assert got["got_evaluator"]["description"] == "output equals the answer"
    # without hl_generated (0.5.36 does not know the field) loopgate runs it (tests/test_evaluation_runs.py)
    assert got["server_run"]["id"].startswith("ev_")
    assert got["server_run"]["status"] in ("pending", "running")
    assert got["server_run"]["evaluators"] == [exact["id"]]
    created = got["created"]
    assert created["status"] == "running"
    assert [result["value"] for result in got["results"]] == [True, False]
    assert {result["log_id"] for result in got["results"]} == {log["id"] for log in got["logs"]}
    assert got["completed"]["status"] == "completed"
    assert got["read_back"]["status"] == "completed"
    snapshot = got["snapshot"]["records"]
    assert sorted(record["log"]["output"] for record in snapshot) == ["2", "5"]
    assert got["for_project"] == [got["server_run"]["id"], created["id"]]
    served = get(client, f"/evaluations/{created['id']}")
    assert (served["status"], served["dataset"]["id"]) == ("completed", created["dataset"]["id"])
