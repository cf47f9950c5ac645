"""Evaluators and an evaluation the client runs itself, driven by the official humanloop SDK 0.7.35 end to end
(``hl.evaluators.*``, ``hl.evaluations.*`` with ``hl_generated=False``), and an evaluation loopgate generates.

The scenario in ``sdk_evaluations_scenarios.py`` runs as one subprocess with the SDK's interpreter against the
session's ``loopgate serve`` and records what the SDK handed back; these tests assert on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_scenarios

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgresql")]

SCRIPT = Path(__file__).with_name("sdk_evaluations_scenarios.py")


@pytest.fixture(scope="module")
def sdk(server: Server) -> dict[str, Any]:
    return run_scenarios(SCRIPT, server, "all")


def test_an_evaluation_the_client_runs_through_the_sdk(sdk: dict[str, Any]) -> None:
    got = result(sdk, "evaluations")
    exact, stars = got["exact"], got["stars"]
    assert exact["id"].startswith("evfn_") and (exact["type"], exact["return_type"]) == (
        "external",
        "boolean",
    )
    assert got["renamed"]["description"] == "output equals the target answer"
    assert got["code"]["type"] == "python" and got["code"]["code"] == "x"
    assert {exact["id"], stars["id"]} <= set(got["evaluators"]) and got["got_evaluator"] == stars

    created = got["created"]
    assert created["id"].startswith("ev_") and created["status"] == "running"
    assert created["dataset_version_id"] == f"{got['dataset_id']}.v1"
    created = got["created_body"]
    assert created["name"] == "nightly"  # not in v4's EvaluationResponse, so only the raw body has it
    assert created["config"]["id"] == got["config_id"] and created["dataset"]["id"] == got["dataset_id"]
    assert [e["id"] for e in created["evaluators"]] == [exact["id"], stars["id"]]

    assert [log["project_id"] for log in got["logs"]] == [got["project_id"]] * 2
    assert (
        got["stored_log"]["output"] == "2"
        and got["stored_log"]["source_datapoint_id"] == got["datapoint_ids"][0]
    )
    assert got["stored_log"]["batch_ids"] == [created["id"]]  # the run it was posted to
    assert [r["value"] for r in got["results"]] == [True, 5, False, 2]
    assert {r["evaluation_id"] for r in got["results"]} == {created["id"]}

    assert got["completed"]["status"] == "completed"
    assert got["late_result"]["status"] == 409

    read_back = got["read_back"]
    assert read_back["status"] == "completed"
    aggregates = {a["evaluator_id"]: a["aggregate_value"] for a in read_back["evaluator_aggregates"]}
    assert aggregates == {exact["id"]: 0.5, stars["id"]: 3.5}

    snapshot = got["snapshot"]
    assert (snapshot["page"], snapshot["size"], snapshot["total"]) == (1, 10, 2)
    assert [r["datapoint"]["id"] for r in snapshot["records"]] == got["datapoint_ids"]
    assert [r["log"]["output"] for r in snapshot["records"]] == ["2", "5"]
    assert [len(r["evaluation_results"]) for r in snapshot["records"]] == [2, 2]

    assert got["for_project"] == [created["id"]]
    assert got["listed"]["total"] == 1 and got["listed"]["records"][0]["id"] == created["id"]

    assert got["python_evaluator"]["status"] == 422
    assert "'external' or 'human'" in got["python_evaluator"]["body"]["detail"][0]["msg"]
    assert got["evaluator_in_use"]["status"] == 409
    assert got["evaluator_gone"]["status"] == 404


def test_an_evaluation_loopgate_runs_through_the_sdk(sdk: dict[str, Any]) -> None:
    got = result(sdk, "generated")
    assert got["judge"]["type"] == "llm"
    assert got["statuses"][0] in ("pending", "running") and got["statuses"][-1] == "completed"
    snapshot = got["snapshot"]
    assert snapshot["total"] == 2
    records = snapshot["records"]
    outputs = [record["log"]["output"] for record in records]
    assert outputs == ["This is a mock response to: What is 1+1?", "This is a mock response to: What is 2+2?"]
    assert [record["log"]["source"] for record in records] == ["evaluation"] * 2
    values = [[r["value"] for r in record["evaluation_results"]] for record in records]
    assert values == [[True], [False]]
    # Each judgment is a log of the judge's logging project, which the evaluator names.
    judgments = [r["evaluator_log"] for record in records for r in record["evaluation_results"]]
    assert [log["judgment"] for log in judgments] == [True, False]
    project = got["logging_project"]
    assert project["name"] == f"judge (evaluator {got['judge']['id']})"
    assert {log["project_id"] for log in judgments} == {project["id"]}
    (aggregate,) = got["read_back"]["evaluator_aggregates"]
    assert aggregate["evaluator_id"] == got["judge"]["id"] and aggregate["aggregate_value"] == 0.5
    assert got["logs"]["total"] == 2
