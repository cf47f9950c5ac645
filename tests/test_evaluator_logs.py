"""Each judgment loopgate makes in a generated run is a log of the evaluator's logging project, named by
the result as its ``evaluator_log``: the rendered prompt, the judge's answer, the value read from it (or
why there is none), the evaluator version as its config. The evaluator names the project as its
``logging_project``; results the client posts have no evaluator log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import MOCK_CONFIG, MOCK_REPLY
from tests.test_evaluation_runs import CHAT_CONFIG, Run, judge, results_by_evaluator
from tests.test_evaluations import evaluator, ok

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def evaluator_logs(run: Run, evaluation_id: str, evaluator_id: str) -> list[dict[str, Any]]:
    return [
        results_by_evaluator(record)[evaluator_id]["evaluator_log"] for record in run.snapshot(evaluation_id)
    ]


def test_each_judgment_is_a_log_of_the_evaluators_logging_project(client: httpx.Client) -> None:
    run = Run(
        client,
        [{"inputs": {"q": "1+1"}, "target": {"v": "yes"}}, {"inputs": {"q": "2+2"}, "target": {"v": "no"}}],
        CHAT_CONFIG,
    )
    verdict = judge(client, "boolean", "Judge {{log.output}}: {{testcase.target.v}}", name="verdict")
    assert ok(client.get(f"/evaluators/{verdict['id']}"))["logging_project"] is None  # until it judges
    created = run.start(verdict)
    run.wait(created["id"])

    project = ok(client.get(f"/evaluators/{verdict['id']}"))["logging_project"]
    assert project["name"] == f"verdict (evaluator {verdict['id']})" and project["data_count"] == 2
    listed = {e["id"]: e for e in ok(client.get("/evaluators"))}
    assert listed[verdict["id"]]["logging_project"]["id"] == project["id"]

    records = run.snapshot(created["id"])
    for record, expected in zip(records, (True, False), strict=True):
        judged = record["log"]
        result = results_by_evaluator(record)[verdict["id"]]
        log = result["evaluator_log"]
        prompt = f"Judge {judged['output']}: {'yes' if expected else 'no'}"
        assert [(m["role"], m["content"]) for m in log["messages"]] == [("user", prompt)]
        assert log["output"] == f"{MOCK_REPLY}{prompt}"  # the judge's answer, whose last word was read
        assert (log["judgment"], result["value"], log["error"]) == (expected, expected, None)
        assert (log["project_id"], log["source"]) == (project["id"], "evaluator")
        assert log["metadata"] == {
            "evaluation_id": created["id"],
            "log_id": judged["id"],
            "evaluator_id": verdict["id"],
        }
        assert log["provider_request"] is not None and log["duration"] is not None
        config = log["config"]
        assert (config["type"], config["evaluator_type"], config["name"]) == ("evaluator", "llm", "verdict")
        assert (config["arguments_type"], config["return_type"]) == ("target_required", "boolean")
        assert config["model_config"]["prompt_template"] == "Judge {{log.output}}: {{testcase.target.v}}"
        # The same log is read back on its own, and listed in its project.
        assert ok(client.get(f"/logs/{log['id']}"))["judgment"] == expected
    listed_logs = ok(client.get("/logs", params={"project_id": project["id"], "size": 10}))["records"]
    assert {log["id"] for log in listed_logs} == {
        results_by_evaluator(record)[verdict["id"]]["evaluator_log"]["id"] for record in records
    }

    # A later run of the same evaluator version logs into the same project, under the same config; a
    # changed prompt is a new config version there.
    again = run.start(verdict)
    run.wait(again["id"])
    first_config = records[0]["evaluation_results"][0]["evaluator_log"]["config"]["id"]
    assert {log["config"]["id"] for log in evaluator_logs(run, again["id"], verdict["id"])} == {first_config}
    changed = {"model_config": {**MOCK_CONFIG, "prompt_template": "{{testcase.target.v}}"}}
    ok(client.patch(f"/evaluators/{verdict['id']}", json=changed))
    third = run.start(verdict)
    run.wait(third["id"])
    logs = evaluator_logs(run, third["id"], verdict["id"])
    assert {log["project_id"] for log in logs} == {project["id"]}
    assert len({log["config"]["id"] for log in logs} | {first_config}) == 2
    configs = ok(client.get(f"/projects/{project['id']}/configs"))
    assert sorted(c["config"]["type"] for c in configs) == ["evaluator", "evaluator"]


def test_a_failed_judgment_is_logged_with_its_error(client: httpx.Client) -> None:
    run = Run(client, [{"inputs": {"q": "x"}}], CHAT_CONFIG)
    unreadable = judge(client, "number", "{{log.output}} has no digits", name="unreadable")
    refused = judge(client, "text", "mock-error:429", name="refused")  # the mock provider refuses it
    created = run.start(unreadable, refused)
    run.wait(created["id"])
    (record,) = run.snapshot(created["id"])
    results = results_by_evaluator(record)

    unread = results[unreadable["id"]]
    assert unread["value"] is None and "Expected a number" in unread["error"]
    log = unread["evaluator_log"]
    assert log["error"] == unread["error"] and log["judgment"] is None
    assert log["output"].endswith("has no digits")  # what the judge said is kept, though it had no number

    failed = results[refused["id"]]
    assert failed["value"] is None and failed["error"].startswith("Mock: ")
    assert failed["evaluator_log"]["error"] == failed["error"] and failed["evaluator_log"]["output"] is None


def test_posted_results_and_unjudged_logs_have_no_evaluator_log(client: httpx.Client) -> None:
    run = Run(
        client,
        [
            {"inputs": {"q": "ok"}},
            {"inputs": {"q": "x"}, "messages": [{"role": "user", "content": "mock-error:400"}]},
        ],
        CHAT_CONFIG,
    )
    external = evaluator(client, "external")
    verdict = judge(client, "boolean", "{{log.output}} true")
    created = run.start(verdict, external)
    run.wait(created["id"], status="running")
    fine, refused = run.snapshot(created["id"])
    path = f"/evaluations/{created['id']}/result"
    posted = ok(
        client.post(path, json={"log_id": fine["log"]["id"], "evaluator_id": external["id"], "result": True}),
        201,
    )
    assert posted["evaluator_log"] is None
    fine, refused = run.snapshot(created["id"])
    assert results_by_evaluator(fine)[external["id"]]["evaluator_log"] is None
    assert results_by_evaluator(fine)[verdict["id"]]["evaluator_log"]["judgment"] is True
    # The generation failed, so nothing was judged and nothing logged.
    assert results_by_evaluator(refused)[verdict["id"]]["evaluator_log"] is None
    assert ok(client.get(f"/evaluators/{external['id']}"))["logging_project"] is None


def test_a_deleted_logging_project_is_replaced_at_the_next_run(client: httpx.Client) -> None:
    run = Run(client, [{"inputs": {"q": "a"}}], CHAT_CONFIG)
    verdict = judge(client, "boolean", "{{log.output}} yes", name="replaced")
    first = run.start(verdict)
    run.wait(first["id"])
    old = ok(client.get(f"/evaluators/{verdict['id']}"))["logging_project"]
    assert client.delete(f"/projects/{old['id']}").status_code == 204
    # Its logs went with it: the result stays, without its evaluator log.
    (record,) = run.snapshot(first["id"])
    kept = results_by_evaluator(record)[verdict["id"]]
    assert kept["value"] is True and kept["evaluator_log"] is None

    second = run.start(verdict)
    run.wait(second["id"])
    new = ok(client.get(f"/evaluators/{verdict['id']}"))["logging_project"]
    assert new["id"] != old["id"] and new["name"] == old["name"]
    (log,) = evaluator_logs(run, second["id"], verdict["id"])
    assert log["project_id"] == new["id"]


def test_logs_are_filtered_by_their_results(client: httpx.Client) -> None:
    # GET /logs' evaluator-<id>_filter (the spec's prose): logs with a result of that evaluator among the
    # values given, whichever evaluation it came from.
    run = Run(
        client,
        [
            {"inputs": {"q": "a"}, "target": {"v": "yes", "n": "7", "tags": "red, blue"}},
            {"inputs": {"q": "b"}, "target": {"v": "no", "n": "2.5", "tags": "green"}},
        ],
        CHAT_CONFIG,
    )
    verdict = judge(client, "boolean", "{{testcase.target.v}}", name="verdict")
    score = judge(client, "number", "{{testcase.target.n}}", name="score")
    tags = judge(client, "multi_select", "{{testcase.target.tags}}", name="tags")
    label = judge(client, "select", "{{testcase.inputs.q}}", name="label")
    stars = evaluator(client, "external", "number")
    created = run.start(verdict, score, tags, label, stars)
    run.wait(created["id"], status="running")
    first, second = (record["log"]["id"] for record in run.snapshot(created["id"]))
    posted = {"log_id": second, "evaluator_id": stars["id"], "result": 5.0}
    ok(client.post(f"/evaluations/{created['id']}/result", json=posted), 201)

    def found(*filters: tuple[dict[str, Any], str]) -> set[str]:
        params = [("project_id", run.project_id)]
        params += [(f"evaluator-{e['id']}_filter", value) for e, value in filters]
        page = ok(client.get("/logs", params=params))
        assert page["total"] == len(page["records"])
        return {log["id"] for log in page["records"]}

    assert found() == {first, second}
    assert found((verdict, "true")) == {first}
    assert found((verdict, "false")) == {second}
    assert found((verdict, "true"), (verdict, "false")) == {first, second}  # repeated: any of
    assert found((verdict, "1")) == set()  # a boolean is not the number 1
    assert found((score, "7")) == {first} and found((score, "2.5")) == {second}
    assert found((stars, "5")) == {second}  # posted as 5.0
    assert found((tags, "blue")) == {first}  # one label of a multi_select result
    assert found((label, f"{MOCK_REPLY}b")) == {second}
    assert found((verdict, "true"), (score, "2.5")) == set()  # two evaluators: both must match
    assert found(({"id": "evfn_unknown"}, "true")) == set()

    # Each log lists the results on it (LogResponse.evaluation_results), read alone or in a page.
    read = ok(client.get(f"/logs/{second}"))["evaluation_results"]
    values = {result["evaluator_id"]: result["value"] for result in read}
    assert values[verdict["id"]] is False and values[score["id"]] == 2.5 and values[stars["id"]] == 5.0
    assert {result["evaluation_id"] for result in read} == {created["id"]}
    assert all(result["log_id"] == second for result in read)
    listed = ok(client.get("/logs", params={"project_id": run.project_id}))["records"]
    assert {log["id"]: len(log["evaluation_results"]) for log in listed} == {first: 4, second: 5}
    # A judgment's own log has none.
    judgment = read[0]["evaluator_log"]
    assert judgment is None  # not fetched inside a log: GET /evaluations/{id}/datapoints has them
    (record, _) = run.snapshot(created["id"])
    judgment_id = results_by_evaluator(record)[verdict["id"]]["evaluator_log"]["id"]
    assert ok(client.get(f"/logs/{judgment_id}"))["evaluation_results"] == []
