"""Evaluations the client runs itself over HTTP: create (hl_generated=false, external and human evaluators),
read and list, a log and results per datapoint, status changes, added evaluators, the datapoint snapshot and
aggregates; 404s for unknown and other organizations' ids, 422s for what is refused (evaluators loopgate
would run among them), 409s for state conflicts, and what deleting a dataset, evaluator or project does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import MOCK_CONFIG, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

EVALUATION_KEYS = {
    "id",
    "name",
    "status",
    "config",
    "created_at",
    "updated_at",
    "evaluators",
    "dataset",
    "dataset_version_id",
    "dataset_snapshot",
}
RESULT_KEYS = {
    "id",
    "evaluation_id",
    "evaluator_id",
    "evaluator_version_id",
    "log_id",
    "value",
    "error",
    "created_at",
    "updated_at",
    "evaluator_log",  # null for a posted result (tests/test_evaluator_logs.py)
}


@pytest.fixture(scope="module")
def other(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.create_key(org=unique("org"))) as http:
        yield http


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def assert_422(response: httpx.Response, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    assert any(error["loc"] == loc for error in response.json()["detail"]), response.text


def evaluator(client: httpx.Client, kind: str = "external", returns: str = "boolean") -> dict[str, Any]:
    body = {
        "name": f"{kind}-{returns}",
        "description": "",
        "arguments_type": "target_required",
        "return_type": returns,
        "type": kind,
    }
    created: dict[str, Any] = ok(client.post("/evaluators", json=body), 201)
    return created


class Setup:
    """A project with a config, a dataset of two datapoints, and a boolean and a number evaluator."""

    def __init__(self, client: httpx.Client) -> None:
        registered = ok(client.post("/model-configs", json={**MOCK_CONFIG, "project": unique("eval")}))
        self.project_id: str = registered["project_id"]
        self.config_id: str = registered["config"]["id"]
        self.dataset_id: str = ok(
            client.post(f"/projects/{self.project_id}/datasets", json={"name": "golden", "description": ""}),
            201,
        )["id"]
        body = [
            {"inputs": {"q": "1+1"}, "target": {"a": "2"}},
            {"inputs": {"q": "2+2"}, "target": {"a": "4"}},
        ]
        self.datapoints = [
            d["id"] for d in ok(client.post(f"/datasets/{self.dataset_id}/datapoints", json=body), 201)
        ]
        self.exact = evaluator(client)
        self.score = evaluator(client, "human", "number")

    def body(self, **extra: Any) -> dict[str, Any]:
        return {
            "config_id": self.config_id,
            "dataset_id": self.dataset_id,
            "evaluator_ids": [self.exact["id"], self.score["id"]],
            "hl_generated": False,
            **extra,
        }

    def create(self, client: httpx.Client, **extra: Any) -> dict[str, Any]:
        created: dict[str, Any] = ok(
            client.post(f"/projects/{self.project_id}/evaluations", json=self.body(**extra)), 201
        )
        return created


@pytest.fixture
def setup(client: httpx.Client) -> Setup:
    return Setup(client)


def log(client: httpx.Client, evaluation_id: str, datapoint_id: str, output: str = "2") -> dict[str, Any]:
    body = {"datapoint_id": datapoint_id, "log": {"output": output, "inputs": {"q": "?"}}}
    created: dict[str, Any] = ok(client.post(f"/evaluations/{evaluation_id}/log", json=body), 201)
    return created


def result(
    client: httpx.Client, evaluation_id: str, log_id: str, evaluator_id: str, **body: Any
) -> httpx.Response:
    return client.post(
        f"/evaluations/{evaluation_id}/result", json={"log_id": log_id, "evaluator_id": evaluator_id, **body}
    )


def test_a_run_from_creation_to_aggregates(client: httpx.Client, setup: Setup) -> None:
    created = setup.create(client, name="nightly")
    assert set(created) == EVALUATION_KEYS
    assert created["id"].startswith("ev_") and created["status"] == "running" and created["name"] == "nightly"
    assert created["config"]["id"] == setup.config_id and created["config"]["type"] == "model"
    assert [e["id"] for e in created["evaluators"]] == [setup.exact["id"], setup.score["id"]]
    assert created["dataset"]["id"] == setup.dataset_id and created["dataset"]["datapoint_count"] == 2
    assert created["dataset_version_id"] == f"{setup.dataset_id}.v1"
    assert created["dataset_snapshot"]["datapoint_count"] == 2
    evaluation_id = created["id"]
    assert ok(client.get(f"/evaluations/{evaluation_id}")) == created

    # a datapoint added after creation is not part of the run
    (late,) = ok(client.post(f"/datasets/{setup.dataset_id}/datapoints", json={"inputs": {"q": "late"}}), 201)
    again = ok(client.get(f"/evaluations/{evaluation_id}"))
    assert again["dataset"]["datapoint_count"] == 3 and again["dataset_snapshot"]["datapoint_count"] == 2
    assert again["dataset_version_id"] == created["dataset_version_id"]
    assert_422(
        client.post(f"/evaluations/{evaluation_id}/log", json={"datapoint_id": late["id"], "log": {}}),
        ["body", "datapoint_id"],
    )

    first, second = (
        log(client, evaluation_id, dp, output) for dp, output in zip(setup.datapoints, "25", strict=True)
    )
    assert set(first) >= {"id", "project_id"} and first["project_id"] == setup.project_id
    # a real log of the project, with the evaluated config and its datapoint
    stored = ok(client.get(f"/logs/{first['id']}"))
    assert stored["project_id"] == setup.project_id and stored["output"] == "2"
    assert stored["config"]["id"] == setup.config_id and stored["source_datapoint_id"] == setup.datapoints[0]
    listed = ok(client.get("/logs", params={"project_id": setup.project_id}))
    assert {first["id"], second["id"]} <= {row["id"] for row in listed["records"]}

    one = ok(result(client, evaluation_id, first["id"], setup.exact["id"], result=True), 201)
    assert set(one) == RESULT_KEYS and one["id"].startswith("evres_")
    assert (one["value"], one["error"], one["evaluation_id"]) == (True, None, evaluation_id)
    assert one["evaluator_version_id"].startswith("evv_")
    ok(result(client, evaluation_id, second["id"], setup.exact["id"], result=False), 201)
    ok(result(client, evaluation_id, first["id"], setup.score["id"], result=3), 201)
    ok(result(client, evaluation_id, second["id"], setup.score["id"], result=4.5), 201)

    aggregated = ok(client.get(f"/evaluations/{evaluation_id}", params={"evaluator_aggregates": "true"}))
    aggregates = {a["evaluator_id"]: a for a in aggregated["evaluator_aggregates"]}
    assert aggregates[setup.exact["id"]]["aggregate_value"] == 0.5  # true 1, false 0: the share of true
    assert aggregates[setup.score["id"]]["aggregate_value"] == 3.75
    assert {a["model_config_id"] for a in aggregates.values()} == {setup.config_id}
    assert "evaluator_aggregates" not in ok(client.get(f"/evaluations/{evaluation_id}"))

    page = ok(client.get(f"/evaluations/{evaluation_id}/datapoints"))
    assert (page["page"], page["size"], page["total"]) == (1, 10, 2)
    records = page["records"]
    assert [r["datapoint"]["id"] for r in records] == setup.datapoints
    assert [r["log"]["id"] for r in records] == [first["id"], second["id"]]
    assert [r["datapoint"]["target"] for r in records] == [{"a": "2"}, {"a": "4"}]
    assert sorted((r["evaluator_id"], r["value"]) for r in records[1]["evaluation_results"]) == sorted(
        [(setup.exact["id"], False), (setup.score["id"], 4.5)]
    )
    second_page = ok(client.get(f"/evaluations/{evaluation_id}/datapoints", params={"page": 2, "size": 1}))
    assert [r["datapoint"]["id"] for r in second_page["records"]] == [setup.datapoints[1]]
    assert client.get(f"/evaluations/{evaluation_id}/datapoints", params={"page": 0}).status_code == 422

    completed = ok(client.patch(f"/evaluations/{evaluation_id}/status", json={"status": "completed"}))
    assert completed["status"] == "completed" and completed["updated_at"] > created["updated_at"]
    assert ok(client.get(f"/evaluations/{evaluation_id}"))["status"] == "completed"


def test_listing_evaluations(client: httpx.Client, setup: Setup) -> None:
    first = setup.create(client)
    second = setup.create(client)
    assert [e["id"] for e in ok(client.get(f"/projects/{setup.project_id}/evaluations"))] == [
        first["id"],
        second["id"],
    ]
    with_aggregates = ok(
        client.get(f"/projects/{setup.project_id}/evaluations", params={"evaluator_aggregates": True})
    )
    assert all(len(e["evaluator_aggregates"]) == 2 for e in with_aggregates)
    assert with_aggregates[0]["evaluator_aggregates"][0]["aggregate_value"] is None  # no result yet

    paged = ok(client.get("/evaluations", params={"project_id": setup.project_id}))
    assert (paged["page"], paged["size"], paged["total"]) == (0, 50, 2)
    assert [e["id"] for e in paged["records"]] == [first["id"], second["id"]]
    later = ok(client.get("/evaluations", params={"project_id": setup.project_id, "size": 1, "page": 1}))
    assert [e["id"] for e in later["records"]] == [second["id"]] and later["total"] == 2
    chosen = ok(client.get("/evaluations", params=[("project_id", setup.project_id), ("id", second["id"])]))
    assert [e["id"] for e in chosen["records"]] == [second["id"]] and chosen["total"] == 1
    today = first["created_at"][:10]
    dated = {"project_id": setup.project_id, "start_date": today, "end_date": today}
    assert ok(client.get("/evaluations", params=dated))["total"] == 2
    assert ok(client.get("/evaluations", params={**dated, "start_date": "2999-01-01"}))["total"] == 0
    assert_422(client.get("/evaluations"), ["query", "project_id"])
    assert client.get("/evaluations", params={"project_id": "pr_missing"}).status_code == 404


def config_aggregates(client: httpx.Client, project_id: str, flag: Any = True) -> dict[str, Any]:
    """config id -> its ``evaluation_aggregates`` in the project's config list."""
    params = {} if flag is None else {"evaluation_aggregates": flag}
    listed = ok(client.get(f"/projects/{project_id}/configs", params=params))
    return {entry["config"]["id"]: entry["evaluation_aggregates"] for entry in listed}


def test_config_list_evaluation_aggregates(client: httpx.Client, other: httpx.Client, setup: Setup) -> None:
    alpha = ok(
        client.post(
            "/model-configs",
            json={**MOCK_CONFIG, "name": "alpha", "temperature": 0.5, "project_id": setup.project_id},
        )
    )["config"]["id"]
    # no evaluation yet: null without the flag, an empty list with it
    assert config_aggregates(client, setup.project_id, None) == {setup.config_id: None, alpha: None}
    assert config_aggregates(client, setup.project_id) == {setup.config_id: [], alpha: []}

    exact, score = setup.exact["id"], setup.score["id"]
    first = setup.create(client)["id"]
    one, two = (log(client, first, dp) for dp in setup.datapoints)
    ok(result(client, first, one["id"], exact, result=True), 201)
    ok(result(client, first, two["id"], exact, result=False), 201)
    ok(result(client, first, one["id"], score, result=3), 201)
    ok(result(client, first, two["id"], score, result=4.5), 201)
    second = setup.create(client, evaluator_ids=[score])["id"]
    ok(result(client, second, log(client, second, setup.datapoints[0])["id"], score, result=6), 201)
    on_alpha = setup.create(client, config_id=alpha, evaluator_ids=[exact])["id"]
    text = evaluator(client, "human", "text")  # only errors, no numeric result
    ok(client.patch(f"/evaluations/{on_alpha}/evaluators", json={"evaluator_ids": [text["id"]]}))
    logged = log(client, on_alpha, setup.datapoints[0])
    ok(result(client, on_alpha, logged["id"], text["id"], error="reviewer away"), 201)

    for flag in (None, False, "false"):
        assert config_aggregates(client, setup.project_id, flag) == {setup.config_id: None, alpha: None}
    found = config_aggregates(client, setup.project_id, "true")
    versions = aggregate_versions(client, first) | aggregate_versions(client, on_alpha)

    def aggregate(config_id: str, evaluator_id: str, value: float | None) -> dict[str, Any]:
        return {
            "model_config_id": config_id,
            "evaluator_id": evaluator_id,
            "evaluator_version_id": versions[evaluator_id],
            "aggregate_value": value,
        }

    # The evaluators of the config's runs, oldest run first; each result counts once over the runs (the
    # number evaluator's 3, 4.5 and 6 give 4.5, not the mean of the two runs' means, 4.875).
    assert found[setup.config_id] == [
        aggregate(setup.config_id, exact, 0.5),
        aggregate(setup.config_id, score, 4.5),
    ]
    assert found[alpha] == [aggregate(alpha, exact, None), aggregate(alpha, text["id"], None)]
    # one run of a config: the config's aggregates are the run's
    ok(result(client, on_alpha, logged["id"], exact, result=True), 201)
    run = ok(client.get(f"/evaluations/{on_alpha}", params={"evaluator_aggregates": True}))
    assert config_aggregates(client, setup.project_id)[alpha] == run["evaluator_aggregates"]
    assert run["evaluator_aggregates"][0]["aggregate_value"] == 1.0

    # another organization's runs stay its own, and this project is not its to read
    theirs = Setup(other)
    their_run = theirs.create(other)["id"]
    their_log = log(other, their_run, theirs.datapoints[0])
    ok(result(other, their_run, their_log["id"], theirs.exact["id"], result=True), 201)
    foreign = other.get(f"/projects/{setup.project_id}/configs", params={"evaluation_aggregates": True})
    assert foreign.status_code == 404
    (their_aggregates,) = config_aggregates(other, theirs.project_id).values()
    assert [(a["evaluator_id"], a["aggregate_value"]) for a in their_aggregates] == [
        (theirs.exact["id"], 1.0),
        (theirs.score["id"], None),
    ]
    mine = config_aggregates(client, setup.project_id)
    assert {a["evaluator_id"] for entries in mine.values() for a in entries} == {exact, score, text["id"]}
    assert mine[setup.config_id] == found[setup.config_id]


class FourRuns:
    """Four runs of one project, in creation order r1..r4, over two configs ("mock-1", "alpha"), two datasets
    ("golden", "bronze") and both statuses; the number evaluator's mean is 3, none, 5 and 1."""

    def __init__(self, client: httpx.Client, setup: Setup) -> None:
        self.setup = setup
        self.alpha = ok(
            client.post(
                "/model-configs",
                json={**MOCK_CONFIG, "name": "alpha", "temperature": 0.5, "project_id": setup.project_id},
            )
        )["config"]["id"]
        path = f"/projects/{setup.project_id}/datasets"
        self.bronze = ok(client.post(path, json={"name": "bronze", "description": ""}), 201)["id"]
        (bronze_point,) = ok(client.post(f"/datasets/{self.bronze}/datapoints", json={"inputs": {}}), 201)
        plan = [
            (setup.config_id, setup.dataset_id, setup.datapoints[0], 3, "running"),
            (self.alpha, setup.dataset_id, None, None, "completed"),
            (setup.config_id, self.bronze, bronze_point["id"], 5, "running"),
            (self.alpha, self.bronze, bronze_point["id"], 1, "completed"),
        ]
        self.ids: list[str] = []
        for config_id, dataset_id, datapoint_id, score, status in plan:
            run_id = setup.create(client, config_id=config_id, dataset_id=dataset_id)["id"]
            if datapoint_id is not None:
                logged = log(client, run_id, datapoint_id)
                ok(result(client, run_id, logged["id"], setup.score["id"], result=score), 201)
            if status != "running":
                ok(client.patch(f"/evaluations/{run_id}/status", json={"status": status}))
            self.ids.append(run_id)

    def listed(self, client: httpx.Client, **params: Any) -> list[str]:
        """The ids of the page, as r1..r4 (a run of another project would show as its id)."""
        names = {run_id: f"r{index}" for index, run_id in enumerate(self.ids, 1)}
        body = ok(client.get("/evaluations", params={"project_id": self.setup.project_id, **params}))
        return [names.get(record["id"], record["id"]) for record in body["records"]]

    def total(self, client: httpx.Client, **params: Any) -> int:
        body = ok(client.get("/evaluations", params={"project_id": self.setup.project_id, **params}))
        total: int = body["total"]
        return total


@pytest.fixture
def runs(client: httpx.Client, setup: Setup) -> FourRuns:
    return FourRuns(client, setup)


def test_listing_sorts_by_dataset_config_status_and_evaluator(client: httpx.Client, runs: FourRuns) -> None:
    listed = runs.listed
    assert listed(client) == ["r1", "r2", "r3", "r4"]  # the default: oldest first
    # ties keep the default order
    assert listed(client, sort="dataset.asc") == ["r3", "r4", "r1", "r2"]  # bronze, then golden
    assert listed(client, sort="dataset.desc") == ["r1", "r2", "r3", "r4"]
    assert listed(client, sort="config.asc") == ["r2", "r4", "r1", "r3"]  # alpha, then mock-1
    assert listed(client, sort="config.desc") == ["r1", "r3", "r2", "r4"]
    assert listed(client, sort="status.asc") == ["r1", "r3", "r2", "r4"]  # a run's life: running first
    assert listed(client, sort="status.desc") == ["r2", "r4", "r1", "r3"]
    # repeated: the first decides, the next breaks its ties
    assert listed(client, sort=["status.desc", "dataset.asc"]) == ["r4", "r2", "r3", "r1"]
    assert listed(client, sort=["dataset.asc", "status.asc", "config.desc"]) == ["r3", "r4", "r1", "r2"]
    # by the evaluator's mean (3, none, 5, 1): a run without one is last either way
    score = f"evaluator-{runs.setup.score['id']}"
    assert listed(client, sort=f"{score}.desc") == ["r3", "r1", "r4", "r2"]
    assert listed(client, sort=f"{score}.asc") == ["r4", "r1", "r3", "r2"]
    assert listed(client, sort=f"evaluator-{runs.setup.exact['id']}.desc") == ["r1", "r2", "r3", "r4"]
    assert listed(client, sort="evaluator-evfn_missing.asc") == ["r1", "r2", "r3", "r4"]


def test_listing_filters_by_id_dataset_config_and_status(client: httpx.Client, runs: FourRuns) -> None:
    setup, listed = runs.setup, runs.listed
    r1, _, _, r4 = runs.ids
    assert listed(client, id_filter=[r4, r1]) == ["r1", "r4"]
    assert listed(client, id_filter=r1, id=r4) == ["r1", "r4"]  # two spellings of one filter
    # by name or by id, any of the values
    assert listed(client, dataset_filter="golden") == ["r1", "r2"]
    assert listed(client, dataset_filter=runs.bronze) == ["r3", "r4"]
    assert listed(client, dataset_filter=["golden", runs.bronze]) == ["r1", "r2", "r3", "r4"]
    assert listed(client, dataset_filter="Golden") == []  # names match exactly
    assert listed(client, config_filter="alpha") == ["r2", "r4"]
    assert listed(client, config_filter=setup.config_id) == ["r1", "r3"]
    assert listed(client, config_filter="mock-1") == ["r1", "r3"]
    assert listed(client, status_filter="completed") == ["r2", "r4"]
    assert listed(client, status_filter=["running", "completed"]) == ["r1", "r2", "r3", "r4"]
    assert listed(client, status_filter="cancelled") == []
    # different filters all apply, and the total counts what they let through
    both = {"dataset_filter": "golden", "status_filter": "running"}
    assert listed(client, **both) == ["r1"] and runs.total(client, **both) == 1
    assert runs.total(client, config_filter="alpha", id_filter=[r1, r4]) == 1
    assert runs.total(client, dataset_filter="nothing") == 0


def test_listing_pages_through_sorted_and_filtered_runs(client: httpx.Client, runs: FourRuns) -> None:
    score = f"evaluator-{runs.setup.score['id']}.desc"
    pages = [
        runs.listed(client, sort=score, config_filter=["alpha", "mock-1"], size=1, page=page)
        for page in range(5)
    ]
    assert pages == [["r3"], ["r1"], ["r4"], ["r2"], []]
    assert runs.total(client, sort=score, size=1, page=3) == 4
    running = {"sort": "dataset.asc", "status_filter": "running", "size": 1}
    assert [runs.listed(client, **running, page=page) for page in range(3)] == [["r3"], ["r1"], []]
    assert runs.total(client, **running) == 2


@pytest.mark.parametrize(
    "value", ["colour.asc", "dataset", "dataset.up", "evaluator-.asc", "created_at.desc"]
)
def test_listing_refuses_an_unknown_sort(client: httpx.Client, setup: Setup, value: str) -> None:
    response = client.get("/evaluations", params={"project_id": setup.project_id, "sort": value})
    assert response.status_code == 422, response.text
    message = (
        "sort must be <column>.<asc|desc> with column dataset, config, status or evaluator-<evaluator id>, "
        f"not {value!r}"
    )
    assert response.json() == {"detail": [{"loc": ["query", "sort"], "msg": message, "type": "value_error"}]}


def test_listing_refuses_an_unknown_status_filter(client: httpx.Client, setup: Setup) -> None:
    params = [("project_id", setup.project_id), ("status_filter", "running"), ("status_filter", "done")]
    assert_422(client.get("/evaluations", params=params), ["query", "status_filter", 1])


def test_evaluators_loopgate_would_run_are_refused_in_a_client_run(
    client: httpx.Client, setup: Setup
) -> None:
    """A client-run evaluation (hl_generated=false) takes only the client's evaluators: python ones are never
    run, llm ones only in generated runs (tests/test_evaluation_runs.py)."""
    path = f"/projects/{setup.project_id}/evaluations"
    for kind in ("python", "llm"):
        server_run = evaluator(client, kind)
        response = client.post(path, json=setup.body(evaluator_ids=[setup.exact["id"], server_run["id"]]))
        assert_422(response, ["body", "evaluator_ids", 1])
        assert "'external' or 'human'" in response.json()["detail"][0]["msg"]
        evaluation = setup.create(client)
        added = client.patch(
            f"/evaluations/{evaluation['id']}/evaluators", json={"evaluator_ids": [server_run["id"]]}
        )
        assert_422(added, ["body", "evaluator_ids", 0])
    assert ok(client.get(f"/projects/{setup.project_id}/evaluations"))[-1]["evaluators"][-1]["type"] != "llm"


def test_bodies_and_references_are_validated(client: httpx.Client, setup: Setup) -> None:
    path = f"/projects/{setup.project_id}/evaluations"
    for field in ("config_id", "dataset_id", "evaluator_ids"):
        assert_422(
            client.post(path, json={k: v for k, v in setup.body().items() if k != field}), ["body", field]
        )
    assert_422(client.post(path, json=setup.body(extra=1)), ["body", "extra"])
    assert_422(client.post(path, json=setup.body(name="n" * 256)), ["body", "name"])
    elsewhere = ok(client.post("/model-configs", json={**MOCK_CONFIG, "project": unique("elsewhere")}))
    assert_422(client.post(path, json=setup.body(config_id=elsewhere["config"]["id"])), ["body", "config_id"])
    assert setup.create(client, provider_api_keys={"openai": "sk"})["status"] == "running"

    evaluation_id = setup.create(client)["id"]
    logged = log(client, evaluation_id, setup.datapoints[0])
    post = f"/evaluations/{evaluation_id}/log"
    assert_422(client.post(post, json={"datapoint_id": setup.datapoints[1]}), ["body", "log"])
    both = {"datapoint_id": setup.datapoints[1], "log": {"config_id": setup.config_id, "config": MOCK_CONFIG}}
    assert_422(client.post(post, json=both), ["body", "log", "config_id"])
    # one log per datapoint and run
    assert client.post(post, json={"datapoint_id": setup.datapoints[0], "log": {}}).status_code == 409

    exact, score = setup.exact["id"], setup.score["id"]
    assert_422(result(client, evaluation_id, logged["id"], exact, result=1), ["body", "result"])
    assert_422(result(client, evaluation_id, logged["id"], score, result=True), ["body", "result"])
    assert_422(result(client, evaluation_id, logged["id"], exact, result="yes"), ["body", "result", "bool"])
    assert_422(result(client, evaluation_id, logged["id"], exact), ["body", "result"])
    assert_422(result(client, evaluation_id, "data_notalog", exact, result=True), ["body", "log_id"])
    outsider = evaluator(client)
    assert_422(
        result(client, evaluation_id, logged["id"], outsider["id"], result=True), ["body", "evaluator_id"]
    )
    assert_422(
        client.post(f"/evaluations/{evaluation_id}/result", json={"log_id": logged["id"]}),
        ["body", "evaluator_id"],
    )
    text = evaluator(client, "human", "text")
    ok(client.patch(f"/evaluations/{evaluation_id}/evaluators", json={"evaluator_ids": [text["id"]]}))
    assert_422(result(client, evaluation_id, logged["id"], text["id"], result=1), ["body", "result"])
    failed = ok(result(client, evaluation_id, logged["id"], text["id"], error="reviewer away"), 201)
    assert (failed["value"], failed["error"]) == (None, "reviewer away")

    # a second result for the same log and evaluator replaces the first
    first = ok(result(client, evaluation_id, logged["id"], exact, result=True), 201)
    replaced = ok(result(client, evaluation_id, logged["id"], exact, result=False), 201)
    assert replaced["id"] == first["id"] and replaced["value"] is False
    assert replaced["updated_at"] >= first["updated_at"] and replaced["created_at"] == first["created_at"]
    (record, _) = ok(client.get(f"/evaluations/{evaluation_id}/datapoints"))["records"]
    assert sorted((r["evaluator_id"], r["value"]) for r in record["evaluation_results"]) == sorted(
        [(text["id"], None), (exact, False)]
    )


def test_status_rules(client: httpx.Client, setup: Setup) -> None:
    evaluation_id = setup.create(client)["id"]
    logged = log(client, evaluation_id, setup.datapoints[0])
    status = f"/evaluations/{evaluation_id}/status"
    for refused in ("pending", "cancelled"):
        assert_422(client.patch(status, json={"status": refused}), ["body", "status"])
    assert_422(client.patch(status, json={"status": "done"}), ["body", "status"])
    assert ok(client.patch(status, json={"status": "running"}))["status"] == "running"
    assert ok(client.patch(status, json={"status": "completed"}))["status"] == "completed"
    # a completed run takes no logs or results
    posted = client.post(
        f"/evaluations/{evaluation_id}/log", json={"datapoint_id": setup.datapoints[1], "log": {}}
    )
    assert posted.status_code == 409 and "running" in posted.json()["detail"]
    assert result(client, evaluation_id, logged["id"], setup.exact["id"], result=True).status_code == 409
    assert ok(client.patch(status, json={"status": "running"}))["status"] == "running"
    ok(result(client, evaluation_id, logged["id"], setup.exact["id"], result=True), 201)
    log(client, evaluation_id, setup.datapoints[1])


def aggregate_versions(client: httpx.Client, evaluation_id: str) -> dict[str, str]:
    """evaluator id -> its current version id (EvaluatorResponse has none; an aggregate names it)."""
    got = ok(client.get(f"/evaluations/{evaluation_id}", params={"evaluator_aggregates": True}))
    return {a["evaluator_id"]: a["evaluator_version_id"] for a in got["evaluator_aggregates"]}


def test_adding_evaluators_by_id_and_version(client: httpx.Client, setup: Setup) -> None:
    body = setup.body(evaluator_ids=[setup.exact["id"]])
    evaluation = ok(client.post(f"/projects/{setup.project_id}/evaluations", json=body), 201)
    path = f"/evaluations/{evaluation['id']}/evaluators"
    added = ok(client.patch(path, json={"evaluator_ids": [setup.score["id"], setup.exact["id"]]}))
    assert [e["id"] for e in added["evaluators"]] == [setup.exact["id"], setup.score["id"]]
    assert ok(client.patch(path, json={}))["evaluators"] == added["evaluators"]
    assert client.patch(path, json={"evaluator_ids": ["evfn_missing"]}).status_code == 404

    # by version id: the current version of an evaluator (earlier versions are not kept)
    old_version = aggregate_versions(client, evaluation["id"])[setup.exact["id"]]
    assert old_version.startswith("evv_")
    ok(client.patch(f"/evaluators/{setup.exact['id']}", json={"description": "changed"}))
    current = aggregate_versions(client, evaluation["id"])[setup.exact["id"]]
    assert current != old_version
    body = setup.body(evaluator_ids=[setup.score["id"]])
    second = ok(client.post(f"/projects/{setup.project_id}/evaluations", json=body), 201)
    second_path = f"/evaluations/{second['id']}/evaluators"
    assert client.patch(second_path, json={"evaluator_version_ids": [old_version]}).status_code == 404
    by_version = ok(client.patch(second_path, json={"evaluator_version_ids": [current]}))
    assert [e["id"] for e in by_version["evaluators"]] == [setup.score["id"], setup.exact["id"]]


def test_a_result_names_the_evaluator_version_that_produced_it(client: httpx.Client, setup: Setup) -> None:
    evaluation_id = setup.create(client)["id"]
    logged = log(client, evaluation_id, setup.datapoints[0])
    before = ok(result(client, evaluation_id, logged["id"], setup.exact["id"], result=True), 201)
    ok(client.patch(f"/evaluators/{setup.exact['id']}", json={"name": "stricter"}))
    after = ok(result(client, evaluation_id, logged["id"], setup.exact["id"], result=True), 201)
    assert before["evaluator_version_id"].startswith("evv_")
    assert after["evaluator_version_id"] != before["evaluator_version_id"]


def test_unknown_and_foreign_ids_are_404(client: httpx.Client, other: httpx.Client, setup: Setup) -> None:
    evaluation = setup.create(client)
    evaluation_id = evaluation["id"]
    logged = log(client, evaluation_id, setup.datapoints[0])
    for http, project_id, ev_id in (
        (client, "pr_missing", "ev_missing"),
        (other, setup.project_id, evaluation_id),
    ):
        assert http.get(f"/projects/{project_id}/evaluations").status_code == 404
        assert http.post(f"/projects/{project_id}/evaluations", json=setup.body()).status_code == 404
        assert http.get("/evaluations", params={"project_id": project_id}).status_code == 404
        assert http.get(f"/evaluations/{ev_id}").status_code == 404
        assert http.get(f"/evaluations/{ev_id}/datapoints").status_code == 404
        log_body = {"datapoint_id": setup.datapoints[1], "log": {}}
        assert http.post(f"/evaluations/{ev_id}/log", json=log_body).status_code == 404
        res = {"log_id": logged["id"], "evaluator_id": setup.exact["id"], "result": True}
        assert http.post(f"/evaluations/{ev_id}/result", json=res).status_code == 404
        assert http.patch(f"/evaluations/{ev_id}/status", json={"status": "completed"}).status_code == 404
        assert http.patch(f"/evaluations/{ev_id}/evaluators", json={"evaluator_ids": []}).status_code == 404
    # another organization cannot build an evaluation out of this one's objects either
    mine = ok(other.post("/model-configs", json={**MOCK_CONFIG, "project": unique("theirs")}))
    theirs = f"/projects/{mine['project_id']}/evaluations"
    assert other.post(theirs, json=setup.body()).status_code == 404  # the config
    own_body = setup.body(config_id=mine["config"]["id"])
    assert other.post(theirs, json=own_body).status_code == 404  # the dataset
    own_dataset = ok(
        other.post(f"/projects/{mine['project_id']}/datasets", json={"name": "n", "description": ""}), 201
    )
    own_body["dataset_id"] = own_dataset["id"]
    assert other.post(theirs, json=own_body).status_code == 404  # the evaluators
    # unknown references within the organization
    path = f"/projects/{setup.project_id}/evaluations"
    assert client.post(path, json=setup.body(config_id="config_missing")).status_code == 404
    assert client.post(path, json=setup.body(dataset_id="evts_missing")).status_code == 404
    assert client.post(path, json=setup.body(evaluator_ids=["evfn_missing"])).status_code == 404
    unknown = client.post(f"/evaluations/{evaluation_id}/log", json={"datapoint_id": "dp_missing", "log": {}})
    assert unknown.json() == {"detail": "Datapoint 'dp_missing' not found"}
    assert ok(client.get(f"/evaluations/{evaluation_id}")) | {"updated_at": None} == evaluation | {
        "updated_at": None
    }
    assert client.get("/evaluations/x").json() == {"detail": "Evaluation 'x' not found"}


def test_deleting_what_an_evaluation_uses(client: httpx.Client, setup: Setup) -> None:
    evaluation_id = setup.create(client)["id"]
    logged = log(client, evaluation_id, setup.datapoints[0])
    ok(result(client, evaluation_id, logged["id"], setup.exact["id"], result=True), 201)
    # the dataset and evaluators of a run are kept (409), and nothing of them was deleted
    refused = client.delete(f"/datasets/{setup.dataset_id}")
    assert refused.status_code == 409 and "evaluation" in refused.json()["detail"]
    assert client.delete(f"/evaluators/{setup.exact['id']}").status_code == 409
    assert ok(client.get(f"/datasets/{setup.dataset_id}"))["datapoint_count"] == 2
    assert ok(client.get(f"/evaluators/{setup.exact['id']}"))["id"] == setup.exact["id"]
    # a deleted log reads as not posted
    assert client.delete("/logs", params={"id": logged["id"]}).status_code == 204
    (record, _) = ok(client.get(f"/evaluations/{evaluation_id}/datapoints"))["records"]
    assert record["log"] is None and record["evaluation_results"] == []
    # deleting the project deletes its evaluations (with its configs and logs); then the rest can go
    assert client.delete(f"/projects/{setup.project_id}").status_code == 204
    assert client.get(f"/evaluations/{evaluation_id}").status_code == 404
    assert client.delete(f"/evaluators/{setup.exact['id']}").status_code == 204
    assert client.delete(f"/datasets/{setup.dataset_id}").status_code == 200


def test_racing_logs_for_one_datapoint_leave_exactly_one_log(
    server: Server, client: httpx.Client, setup: Setup
) -> None:
    """Ten clients post a log for the same datapoint at once: one 201, nine 409s, and the project holds
    only the winner's log (a loser's log written before it lost the link is deleted, not left behind)."""
    from concurrent.futures import ThreadPoolExecutor

    evaluation_id = setup.create(client)["id"]
    body = {"datapoint_id": setup.datapoints[0], "log": {"output": "racing", "inputs": {"q": "1+1"}}}

    def post(_: int) -> int:
        with server.client() as racer:
            return racer.post(f"/evaluations/{evaluation_id}/log", json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(post, range(10)))
    assert statuses == [201] + [409] * 9
    logs = ok(client.get("/logs", params={"project_id": setup.project_id, "size": 100}))["records"]
    assert [log["output"] for log in logs].count("racing") == 1
