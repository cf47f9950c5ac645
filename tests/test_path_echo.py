"""Bodies that repeat their path parameters, as TypeScript SDK 0.5.x sends them.

That SDK builds a request body from the same object that holds the path parameters, so ``PATCH
/projects/{id}`` arrives as ``{"id": ..., "name": ...}`` and ``POST /projects/{project_id}/datasets`` with a
``projectId`` key. Each body accepts the names its path is echoed under (and ignores them: the path counts),
while any other unknown key is still a 422. One test per route the SDK sends such a body to.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import MOCK_CONFIG, unique

STRAY = {"not_a_field": 1}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refuses_stray_keys(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "not_a_field"]]


def project(client: httpx.Client) -> dict[str, Any]:
    created: dict[str, Any] = ok(client.post("/projects", json={"name": unique("echo")}), 201)
    return created


def registered(client: httpx.Client) -> dict[str, Any]:
    config: dict[str, Any] = ok(
        client.post("/model-configs", json={"project": unique("echo"), **MOCK_CONFIG})
    )
    return config


def dataset(client: httpx.Client, project_id: str) -> dict[str, Any]:
    body = {"name": "d", "description": "x"}
    created: dict[str, Any] = ok(client.post(f"/projects/{project_id}/datasets", json=body), 201)
    return created


def external_evaluator(client: httpx.Client) -> dict[str, Any]:
    body = {
        "name": unique("exact"),
        "description": "",
        "arguments_type": "target_free",
        "return_type": "boolean",
        "type": "external",
    }
    created: dict[str, Any] = ok(client.post("/evaluators", json=body), 201)
    return created


def test_project_update(client: httpx.Client) -> None:
    created = project(client)
    path = f"/projects/{created['id']}"
    renamed = ok(client.patch(path, json={"id": created["id"], "name": created["name"] + "-2"}))
    assert renamed["id"] == created["id"]
    assert renamed["name"] == created["name"] + "-2"
    refuses_stray_keys(client.patch(path, json={"id": created["id"], **STRAY}))


def test_project_feedback_type(client: httpx.Client) -> None:
    created = project(client)
    path = f"/projects/{created['id']}/feedback-types"
    body = {"id": created["id"], "type": "tone", "class": "select", "values": [{"value": "warm"}]}
    assert ok(client.post(path, json=body), 201)["type"] == "tone"
    assert "tone" in [t["type"] for t in ok(client.get(f"/projects/{created['id']}"))["feedback_types"]]
    refuses_stray_keys(client.post(path, json={**body, "type": "mood", **STRAY}))


def test_deploy_config(client: httpx.Client) -> None:
    config = registered(client)
    path = f"/projects/{config['project_id']}/deploy-config"
    body = {"projectId": config["project_id"], "config_id": config["config"]["id"]}
    (deployed,) = ok(client.patch(path, json=body))
    assert deployed["model_config_id"] == config["config"]["id"]
    refuses_stray_keys(client.patch(path, json={**body, **STRAY}))


def test_dataset_create_and_update(client: httpx.Client) -> None:
    project_id = project(client)["id"]
    path = f"/projects/{project_id}/datasets"
    body = {"projectId": project_id, "name": "golden", "description": "trusted"}
    created = ok(client.post(path, json=body), 201)
    assert (created["project_id"], created["name"]) == (project_id, "golden")
    refuses_stray_keys(client.post(path, json={**body, **STRAY}))

    path = f"/datasets/{created['id']}"
    assert ok(client.patch(path, json={"id": created["id"], "name": "golden-2"}))["name"] == "golden-2"
    refuses_stray_keys(client.patch(path, json={"id": created["id"], **STRAY}))


def test_datapoint_update_but_not_create(client: httpx.Client) -> None:
    dataset_id = dataset(client, project(client)["id"])["id"]
    (point,) = ok(client.post(f"/datasets/{dataset_id}/datapoints", json={"inputs": {"q": "a"}}), 201)
    path = f"/datapoints/{point['id']}"
    updated = ok(client.patch(path, json={"id": point["id"], "target": {"answer": "b"}}))
    assert (updated["inputs"], updated["target"]) == ({"q": "a"}, {"answer": "b"})
    refuses_stray_keys(client.patch(path, json={"id": point["id"], **STRAY}))
    # creation has no path id to echo, so an "id" there is a stray key like any other
    response = client.post(f"/datasets/{dataset_id}/datapoints", json={"id": "x", "inputs": {"q": "c"}})
    assert response.status_code == 422, response.text


def test_evaluator_update(client: httpx.Client) -> None:
    created = external_evaluator(client)
    path = f"/evaluators/{created['id']}"
    assert ok(client.patch(path, json={"id": created["id"], "description": "new"}))["description"] == "new"
    refuses_stray_keys(client.patch(path, json={"id": created["id"], **STRAY}))


def test_evaluation_create_result_and_status(client: httpx.Client) -> None:
    config = registered(client)
    project_id = config["project_id"]
    dataset_id = dataset(client, project_id)["id"]
    (point,) = ok(client.post(f"/datasets/{dataset_id}/datapoints", json={"inputs": {"q": "a"}}), 201)
    evaluator_id = external_evaluator(client)["id"]
    path = f"/projects/{project_id}/evaluations"
    body = {
        "projectId": project_id,
        "config_id": config["config"]["id"],
        "dataset_id": dataset_id,
        "evaluator_ids": [evaluator_id],
        "hl_generated": False,
    }
    evaluation = ok(client.post(path, json=body), 201)
    refuses_stray_keys(client.post(path, json={**body, **STRAY}))

    log_body = {"datapoint_id": point["id"], "log": {"inputs": {"q": "a"}, "output": "b"}}
    log_id = ok(client.post(f"/evaluations/{evaluation['id']}/log", json=log_body), 201)["id"]
    path = f"/evaluations/{evaluation['id']}/result"
    body = {"evaluationRunExternalId": evaluation["id"], "log_id": log_id, "evaluator_id": evaluator_id}
    refuses_stray_keys(client.post(path, json={**body, "result": True, **STRAY}))
    result = ok(client.post(path, json={**body, "result": True}), 201)
    assert (result["log_id"], result["value"]) == (log_id, True)

    path = f"/evaluations/{evaluation['id']}/status"
    refuses_stray_keys(client.patch(path, json={"id": evaluation["id"], "status": "completed", **STRAY}))
    assert (
        ok(client.patch(path, json={"id": evaluation["id"], "status": "completed"}))["status"] == "completed"
    )


def test_the_path_wins_over_an_echo_that_disagrees(client: httpx.Client) -> None:
    """Only the SDK sends the echo, always equal to the path; should anything else differ, the path counts."""
    first, second = project(client), project(client)
    ok(client.patch(f"/projects/{first['id']}", json={"id": second["id"], "name": first["name"] + "-x"}))
    assert ok(client.get(f"/projects/{first['id']}"))["name"] == first["name"] + "-x"
    assert ok(client.get(f"/projects/{second['id']}"))["name"] == second["name"]


def test_log_updates_by_id_and_by_reference(client: httpx.Client) -> None:
    """UpdateLogRequest leaves extra keys open (0.5.18's stray provider_api_keys), echoes included."""
    reference = unique("ref")
    body = {"project": unique("echo"), "config": MOCK_CONFIG, "reference_id": reference, "output": "a"}
    log_id = ok(client.post("/logs", json=body))["id"]
    assert ok(client.patch(f"/logs/{log_id}", json={"id": log_id, "output": "b"}))["output"] == "b"
    by_reference = client.patch(
        "/logs", params={"reference_id": reference}, json={"referenceId": reference, "output": "c"}
    )
    assert ok(by_reference)["output"] == "c"
