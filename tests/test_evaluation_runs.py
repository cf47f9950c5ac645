"""Evaluations loopgate runs itself (``hl_generated=true``, v4's default) over HTTP: one generation per
datapoint, logged in the project with its datapoint; each llm evaluator's judgment of it, read as the
evaluator's return type; errors kept as results, not lost; the client's own evaluators alongside; added
evaluators run on the logs already there; and a run whose process is gone taken over and finished from
where it stopped, without generating again what it had."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server
from tests.helpers import MOCK_CONFIG, MOCK_REPLY, db_rows, unique
from tests.test_evaluations import assert_422, evaluator, ok

pytestmark = pytest.mark.backends("sqlite", "postgresql")

CHAT_CONFIG = {**MOCK_CONFIG, "chat_template": [{"role": "user", "content": "Answer {{q}}"}]}


def judge(client: httpx.Client, returns: str, template: str, name: str = "judge") -> dict[str, Any]:
    body = {
        "name": name,
        "description": "an llm judge",
        "arguments_type": "target_required",
        "return_type": returns,
        "type": "llm",
        "model_config": {**MOCK_CONFIG, "prompt_template": template},
    }
    created: dict[str, Any] = ok(client.post("/evaluators", json=body), 201)
    return created


class Run:
    """A project with a chat config and a dataset; ``start`` creates a generated run (hl_generated left to
    its default, as the SDK sends it)."""

    def __init__(
        self, client: httpx.Client, datapoints: list[dict[str, Any]], config: dict[str, Any]
    ) -> None:
        self.client = client
        registered = ok(client.post("/model-configs", json={**config, "project": unique("run")}))
        self.project_id: str = registered["project_id"]
        self.config_id: str = registered["config"]["id"]
        dataset = {"name": "golden", "description": ""}
        self.dataset_id: str = ok(client.post(f"/projects/{self.project_id}/datasets", json=dataset), 201)[
            "id"
        ]
        made = ok(client.post(f"/datasets/{self.dataset_id}/datapoints", json=datapoints), 201)
        self.datapoint_ids = [datapoint["id"] for datapoint in made]

    def start(self, *evaluators: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body = {
            "config_id": self.config_id,
            "dataset_id": self.dataset_id,
            "evaluator_ids": [e["id"] for e in evaluators],
            **extra,
        }
        created: dict[str, Any] = ok(
            self.client.post(f"/projects/{self.project_id}/evaluations", json=body), 201
        )
        return created

    def wait(self, evaluation_id: str, status: str = "completed", timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got: dict[str, Any] = ok(self.client.get(f"/evaluations/{evaluation_id}"))
            if got["status"] == status and self.generated(evaluation_id):
                return got
            assert time.monotonic() < deadline, f"still {got['status']} after {timeout} s"
            time.sleep(0.1)

    def generated(self, evaluation_id: str) -> bool:
        """The runner's part is done (``generated_at`` is what the API shows of it only through status)."""
        rows = self.client.get(f"/evaluations/{evaluation_id}/datapoints", params={"size": 100}).json()
        return all(record["log"] is not None for record in rows["records"])

    def snapshot(self, evaluation_id: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = ok(
            self.client.get(f"/evaluations/{evaluation_id}/datapoints", params={"size": 100})
        )["records"]
        return records


def results_by_evaluator(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["evaluator_id"]: result for result in record["evaluation_results"]}


def test_a_generated_run_logs_every_datapoint_and_judges_each_log(client: httpx.Client) -> None:
    datapoints = [
        {"inputs": {"q": "1+1"}, "target": {"verdict": "true", "score": "7"}},
        {"inputs": {"q": "2+2"}, "target": {"verdict": "no", "score": "2.5"}},
        {"inputs": {"q": "3+3"}, "target": {"verdict": "Yes.", "score": "10"}},
    ]
    run = Run(client, datapoints, CHAT_CONFIG)
    # The mock answers "This is a mock response to: <prompt>", so each judgment is the datapoint's target.
    verdict = judge(
        client, "boolean", "Is '{{log.output}}' right for {{log.inputs.q}}? {{testcase.target.verdict}}"
    )
    score = judge(
        client, "number", "Score the answer to {{testcase.inputs.q}} out of {{testcase.target.score}}"
    )
    label = judge(client, "select", "{{testcase.inputs.q}}")
    tags = judge(client, "multi_select", "{{testcase.target.verdict}}, x,\n y")
    created = run.start(verdict, score, label, tags, name="nightly")
    assert created["status"] in ("pending", "running")
    done = run.wait(created["id"])
    assert done["name"] == "nightly"

    records = run.snapshot(created["id"])
    assert [record["datapoint"]["id"] for record in records] == run.datapoint_ids
    for record, datapoint in zip(records, datapoints, strict=True):
        log = record["log"]
        assert log["output"] == f"{MOCK_REPLY}Answer {datapoint['inputs']['q']}"
        assert log["inputs"] == datapoint["inputs"]
        assert (log["source"], log["source_datapoint_id"]) == ("evaluation", record["datapoint"]["id"])
        assert log["config_id"] == run.config_id and log["project_id"] == run.project_id
        assert log["batch_ids"] == [created["id"]]  # the run the log was made for
    values = [
        {
            key: results_by_evaluator(record)[e["id"]]["value"]
            for key, e in zip("vslt", (verdict, score, label, tags), strict=True)
        }
        for record in records
    ]
    # select: the whole answer, trimmed; multi_select: split at commas and new lines.
    assert values == [
        {"v": True, "s": 7, "l": f"{MOCK_REPLY}1+1", "t": [f"{MOCK_REPLY}true", "x", "y"]},
        {"v": False, "s": 2.5, "l": f"{MOCK_REPLY}2+2", "t": [f"{MOCK_REPLY}no", "x", "y"]},
        {"v": True, "s": 10, "l": f"{MOCK_REPLY}3+3", "t": [f"{MOCK_REPLY}Yes.", "x", "y"]},
    ]
    assert all(r["error"] is None for record in records for r in record["evaluation_results"])

    aggregated = ok(client.get(f"/evaluations/{created['id']}", params={"evaluator_aggregates": True}))
    means = {a["evaluator_id"]: a["aggregate_value"] for a in aggregated["evaluator_aggregates"]}
    assert means[verdict["id"]] == pytest.approx(2 / 3)
    assert means[score["id"]] == pytest.approx((7 + 2.5 + 10) / 3)
    # The generations are the project's logs, like any other.
    logs = ok(client.get("/logs", params={"project_id": run.project_id, "size": 50}))
    assert logs["total"] == 3
    assert {log["id"] for log in logs["records"]} == {record["log"]["id"] for record in records}
    assert {tuple(log["batch_ids"]) for log in logs["records"]} == {(created["id"],)}


def test_failures_are_logged_and_kept_as_result_errors(client: httpx.Client) -> None:
    datapoints = [
        # The provider refuses the generation: the mock fails on a last user message "mock-error:<status>".
        {"inputs": {"q": "x"}, "messages": [{"role": "user", "content": "mock-error:400"}]},
        {"inputs": {"other": "x"}},  # the template's {{q}} has nothing to fill it
        {"inputs": {"q": "fine"}},
    ]
    run = Run(client, datapoints, CHAT_CONFIG)
    verdict = judge(client, "boolean", "{{log.output}} -- no verdict here, maybe")
    missing = judge(client, "text", "{{testcase.target.nothing}}")
    created = run.start(verdict, missing)
    run.wait(created["id"])
    refused, unfilled, fine = run.snapshot(created["id"])

    assert refused["log"]["error"].startswith("Mock: ") and refused["log"]["output"] is None
    assert "Template variable 'q'" in unfilled["log"]["error"]
    assert unfilled["log"]["source_datapoint_id"] == unfilled["datapoint"]["id"]
    assert fine["log"]["error"] is None
    for record in (refused, unfilled):
        for result in record["evaluation_results"]:
            assert result["value"] is None
            assert result["error"].startswith("No output to judge: the generation failed (")
    results = results_by_evaluator(fine)
    assert results[verdict["id"]]["value"] is None
    assert "end in true or false" in results[verdict["id"]]["error"]
    assert results[missing["id"]]["value"] is None
    assert "{{testcase.target.nothing}}" in results[missing["id"]]["error"]


def test_the_clients_evaluators_keep_the_run_running_until_it_completes_it(client: httpx.Client) -> None:
    run = Run(client, [{"inputs": {"q": "1+1"}, "target": {"a": "true"}}], CHAT_CONFIG)
    external = evaluator(client, "external")
    verdict = judge(client, "boolean", "{{testcase.target.a}}")
    created = run.start(verdict, external)
    run.wait(created["id"], status="running")
    (record,) = run.snapshot(created["id"])
    log_id = record["log"]["id"]
    assert list(results_by_evaluator(record)) == [verdict["id"]]

    path = f"/evaluations/{created['id']}"
    posted = client.post(f"{path}/log", json={"datapoint_id": run.datapoint_ids[0], "log": {"output": "2"}})
    assert posted.status_code == 409, posted.text  # the logs of a generated run are loopgate's
    mine = client.post(
        f"{path}/result", json={"log_id": log_id, "evaluator_id": verdict["id"], "result": False}
    )
    assert_422(mine, ["body", "evaluator_id"])
    theirs = client.post(
        f"{path}/result", json={"log_id": log_id, "evaluator_id": external["id"], "result": True}
    )
    assert ok(theirs, 201)["value"] is True
    assert ok(client.patch(f"{path}/status", json={"status": "completed"}))["status"] == "completed"


def test_added_evaluators_judge_the_logs_already_generated(client: httpx.Client) -> None:
    run = Run(
        client,
        [{"inputs": {"q": "a"}, "target": {"n": "1"}}, {"inputs": {"q": "b"}, "target": {"n": "3"}}],
        CHAT_CONFIG,
    )
    first = judge(client, "number", "{{testcase.target.n}}")
    created = run.start(first)
    run.wait(created["id"])
    logs = [record["log"]["id"] for record in run.snapshot(created["id"])]

    second = judge(client, "number", "{{testcase.target.n}}0", name="tenfold")
    patched = client.patch(f"/evaluations/{created['id']}/evaluators", json={"evaluator_ids": [second["id"]]})
    assert ok(patched)["status"] == "running"
    run.wait(created["id"])
    records = run.snapshot(created["id"])
    assert [record["log"]["id"] for record in records] == logs  # judged again, not generated again
    assert [results_by_evaluator(record)[second["id"]]["value"] for record in records] == [10, 30]
    assert [results_by_evaluator(record)[first["id"]]["value"] for record in records] == [1, 3]


def test_a_run_whose_process_is_gone_is_taken_over_where_it_stopped(
    client: httpx.Client, server: Server
) -> None:
    datapoints = [{"inputs": {"q": str(n)}, "target": {"n": str(n)}} for n in range(4)]
    run = Run(client, datapoints, CHAT_CONFIG)
    score = judge(client, "number", "{{testcase.target.n}}")
    created = run.start(score)
    run.wait(created["id"])
    before = run.snapshot(created["id"])
    # As a process that died part-way would have left it: held by a process of this host that no longer
    # runs (a lease that has not lapsed), the last datapoint without its log, the third without its result.
    gone = f"{socket.gethostname()}:{2**22 + 12345}:dead"
    far = time.time() + 3600
    db_rows(
        server.database,
        "UPDATE evaluations SET status = 'running', generated_at = NULL, owner = ?, lease_until = ?"
        " WHERE id = ?",
        gone,
        far,
        created["id"],
    )
    db_rows(
        server.database,
        "DELETE FROM evaluation_logs WHERE evaluation_id = ? AND datapoint_id = ?",
        created["id"],
        run.datapoint_ids[3],
    )
    db_rows(
        server.database,
        "DELETE FROM evaluation_results WHERE evaluation_id = ? AND log_id = ?",
        created["id"],
        before[2]["log"]["id"],
    )

    run.wait(created["id"], timeout=30)
    after = run.snapshot(created["id"])
    assert [record["log"]["id"] for record in after[:3]] == [record["log"]["id"] for record in before[:3]]
    assert after[3]["log"]["id"] != before[3]["log"]["id"]
    assert [results_by_evaluator(record)[score["id"]]["value"] for record in after] == [0, 1, 2, 3]
    (owner,) = db_rows(server.database, "SELECT owner FROM evaluations WHERE id = ?", created["id"])
    assert owner[0] is None  # finished, and its lease given up


def test_what_loopgate_cannot_run_is_refused(client: httpx.Client) -> None:
    run = Run(client, [{"inputs": {"q": "1"}}], CHAT_CONFIG)
    path = f"/projects/{run.project_id}/evaluations"
    code = evaluator(client, "python")
    body = {"config_id": run.config_id, "dataset_id": run.dataset_id, "evaluator_ids": [code["id"]]}
    refused = client.post(path, json=body)
    assert_422(refused, ["body", "evaluator_ids", 0])
    assert "does not run code" in refused.json()["detail"][0]["msg"]
    no_prompt = ok(
        client.post(
            "/evaluators",
            json={
                "name": "bare",
                "description": "",
                "arguments_type": "target_free",
                "return_type": "boolean",
                "type": "llm",
                "model_config": MOCK_CONFIG,
            },
        ),
        201,
    )
    refused = client.post(path, json={**body, "evaluator_ids": [no_prompt["id"]]})
    assert_422(refused, ["body", "evaluator_ids", 0])
    assert "no prompt_template" in refused.json()["detail"][0]["msg"]
    # The request's provider keys are checked when the run is created, not when it first calls a provider.
    bad_keys = client.post(path, json={**body, "evaluator_ids": [], "provider_api_keys": {"openai": ["x"]}})
    assert_422(bad_keys, ["body", "provider_api_keys", "openai"])
    # An llm evaluator needs loopgate to generate the run.
    verdict = judge(client, "boolean", "{{log.output}}")
    refused = client.post(path, json={**body, "evaluator_ids": [verdict["id"]], "hl_generated": False})
    assert_422(refused, ["body", "evaluator_ids", 0])


@pytest.mark.parametrize(
    ("config", "datapoint", "sent"),
    [
        # a completion config: its prompt, filled from the datapoint's inputs
        ({**MOCK_CONFIG, "prompt_template": "Complete {{q}}"}, {"inputs": {"q": "this"}}, "Complete this"),
        # neither template: a chat of the datapoint's messages
        (MOCK_CONFIG, {"messages": [{"role": "user", "content": "hello"}]}, "hello"),
    ],
)
def test_each_kind_of_config_is_run_as_its_kind(
    client: httpx.Client, config: dict[str, Any], datapoint: dict[str, Any], sent: str
) -> None:
    run = Run(client, [datapoint], config)
    created = run.start()
    run.wait(created["id"])
    (record,) = run.snapshot(created["id"])
    assert record["log"]["error"] is None
    assert record["log"]["output"] == f"{MOCK_REPLY}{sent}"


def test_a_generated_run_is_cancelled_and_resumed_where_it_stopped(
    client: httpx.Client, server: Server
) -> None:
    run = Run(client, [{"inputs": {"q": str(n)}, "target": {"n": str(n)}} for n in range(3)], CHAT_CONFIG)
    score = judge(client, "number", "{{testcase.target.n}}")
    created = run.start(score)
    # As a run another server is in the middle of: held by a live process of this host that is not this
    # server (pid 1), so this server leaves it alone.
    db_rows(
        server.database,
        "UPDATE evaluations SET status = 'running', generated_at = NULL, owner = ?, lease_until = ?"
        " WHERE id = ?",
        f"{socket.gethostname()}:1:elsewhere",
        time.time() + 3600,
        created["id"],
    )
    path = f"/evaluations/{created['id']}"
    completed = client.patch(f"{path}/status", json={"status": "completed"})
    assert completed.status_code == 409, completed.text  # it completes by itself
    assert "can be set 'cancelled'" in completed.json()["detail"]

    assert ok(client.patch(f"{path}/status", json={"status": "cancelled"}))["status"] == "cancelled"
    (row,) = db_rows(
        server.database, "SELECT owner, generated_at FROM evaluations WHERE id = ?", created["id"]
    )
    assert tuple(row) == (None, None)  # the lease given up, the run unfinished
    assert ok(client.patch(f"{path}/status", json={"status": "cancelled"}))["status"] == "cancelled"
    time.sleep(6)  # longer than a runner's look for runs to take: a cancelled run is not taken
    assert ok(client.get(path))["status"] == "cancelled"

    assert ok(client.patch(f"{path}/status", json={"status": "running"}))["status"] == "running"
    run.wait(created["id"])
    values = [results_by_evaluator(record)[score["id"]]["value"] for record in run.snapshot(created["id"])]
    assert values == [0, 1, 2]
    # Finished: the client's rules again, under which a run is never set pending or cancelled.
    assert_422(client.patch(f"{path}/status", json={"status": "cancelled"}), ["body", "status"])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_with_two_workers_each_run_is_generated_once(tmp_path: Path, backend: str) -> None:
    """Runs created on either of two worker processes are each generated by one of them: one log per
    datapoint and one result per log, however the runs and their leases spread."""
    server = make_server(tmp_path, backend=backend)
    server.start("--workers", "2", timeout=90)
    try:
        with server.client() as client:
            run = Run(
                client, [{"inputs": {"q": str(n)}, "target": {"n": str(n)}} for n in range(5)], CHAT_CONFIG
            )
            score = judge(client, "number", "{{testcase.target.n}}")
            created = [run.start(score) for _ in range(6)]  # the kernel spreads the requests' connections
            for evaluation in created:
                run.wait(evaluation["id"])
                values = [
                    results_by_evaluator(record)[score["id"]]["value"]
                    for record in run.snapshot(evaluation["id"])
                ]
                assert values == [0, 1, 2, 3, 4]
            logs = ok(client.get("/logs", params={"project_id": run.project_id, "size": 100}))
            assert logs["total"] == 6 * 5  # no datapoint generated twice
            results = db_rows(server.database, "SELECT count(*) FROM evaluation_results")
            assert results[0][0] == 6 * 5
    finally:
        server.stop()
