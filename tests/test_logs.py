"""The logs group over HTTP against a real server: POST/GET/PATCH/DELETE /logs, GET/PATCH /logs/{id},
POST /projects/{id}/export, and logs written by /chat read back through them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Server
from tests.helpers import MOCK_CONFIG, chat_body, log_body, log_row, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

LONG_TEXT = "a long input value that is stored once as a content blob: " + "zebra-crossing " * 6


@pytest.fixture(scope="module")
def other(server: Server) -> Iterator[httpx.Client]:
    """A client of another organization."""
    with server.client(server.create_key(org=unique("org"))) as http:
        yield http


def create(client: httpx.Client, body: Any) -> Any:
    response = client.post("/logs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def get(client: httpx.Client, log_id: str) -> dict[str, Any]:
    response = client.get(f"/logs/{log_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def listing(client: httpx.Client, project_id: str, **params: Any) -> dict[str, Any]:
    response = client.get("/logs", params={"project_id": project_id, **params})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def detail_loc(response: httpx.Response) -> list[Any]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert set(error) == {"loc", "msg", "type"}
    loc: list[Any] = error["loc"]
    return loc


# -- POST /logs and GET /logs/{id} ------------------------------------------------------------------------


def test_a_log_reads_back_with_every_field(client: httpx.Client, server: Server) -> None:
    project = unique()
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}]
    created = create(
        client,
        log_body(
            project,
            config={**MOCK_CONFIG, "temperature": 0.2, "chat_template": [{"role": "system", "content": "x"}]},
            inputs={"question": "2+2?"},
            source="import",
            metadata={"run": 7},
            messages=messages,
            output="4",
            output_message={"role": "assistant", "content": "4"},
            judgment=True,
            environment="staging",
            created_at="2023-05-06T07:08:09+02:00",
            error=None,
            stdout="debug line",
            duration=1.5,
            prompt_tokens=11,
            output_tokens=3,
            prompt_cost=0.01,
            output_cost=0.002,
            provider_request={"model": "mock-1", "messages": messages},
            provider_response={"id": "resp-1", "choices": []},
            source_datapoint_id="dp-1",
            reference_id=unique("ref"),
            feedback={"type": "rating", "value": "good"},
        ),
    )
    assert set(created) == {"id", "project_id", "session_id"}
    assert created["id"].startswith("data_") and created["project_id"].startswith("pr_")
    assert created["session_id"] is None

    log = get(client, created["id"])
    assert log["project"] == project and log["project_id"] == created["project_id"]
    assert log["inputs"] == {"question": "2+2?"}
    assert [(m["role"], m["content"]) for m in log["messages"]] == [("system", "Be terse."), ("user", "2+2?")]
    assert set(log["messages"][0]) >= {"content", "role", "name", "tool_calls", "tool_call_id", "tool_call"}
    assert log["output"] == "4" and log["raw_output"] == "4"
    assert log["output_message"]["role"] == "assistant" and log["output_message"]["content"] == "4"
    assert log["judgment"] is True
    assert log["environment"] == "staging" and log["source"] == "import" and log["metadata"] == {"run": 7}
    assert log["created_at"].startswith("2023-05-06T05:08:09")  # back-dated, normalised to UTC
    assert log["stdout"] == "debug line" and log["duration"] == 1.5
    assert (log["prompt_tokens"], log["output_tokens"], log["tokens"]) == (11, 3, 14)
    assert (log["prompt_cost"], log["output_cost"]) == (0.01, 0.002)
    assert log["provider_request"]["model"] == "mock-1"
    assert log["provider_response"] == {"id": "resp-1", "choices": []}
    assert log["source_datapoint_id"] == "dp-1" and log["save"] is True
    assert log["evaluation_results"] == [] and log["observability_status"] == "completed"
    assert log["updated_at"] and log["error"] is None
    (feedback,) = log["feedback"]
    assert feedback["type"] == "rating" and feedback["value"] == "good" and feedback["id"].startswith("ann_")
    assert feedback["data_id"] == created["id"]

    config = log["config"]
    assert config["type"] == "model" and config["id"] == log["config_id"]
    assert config["model"] == "mock-1" and config["provider"] == "mock" and config["temperature"] == 0.2
    assert config["endpoint"] == "complete"  # ModelConfigRequest's default
    assert config["max_tokens"] == -1 and config["top_p"] == 1 and config["other"] == {}
    assert config["chat_template"][0]["content"] == "x" and config["tools"] == []
    assert log_row(server.database, created["id"])["status"] == "complete"


def test_output_may_be_null_and_save_false_keeps_no_content(client: httpx.Client, server: Server) -> None:
    project = unique()
    pending = create(client, log_body(project, inputs={"q": "later"}))
    assert get(client, pending["id"])["output"] is None
    secret = create(
        client,
        log_body(project, save=False, inputs={"q": "secret"}, output="hidden", metadata={"m": 1}, stdout="s"),
    )
    log = get(client, secret["id"])
    assert log["save"] is False and log["inputs"] == {} and log["output"] is None and log["messages"] is None
    assert log["stdout"] is None and log["metadata"] == {"m": 1} and log["config"]["model"] == "mock-1"
    row = log_row(server.database, secret["id"])
    assert row["payload"] is None and row["output"] is None


def test_inline_configs_are_versioned_with_chat_configs_and_tool_configs(client: httpx.Client) -> None:
    project = unique()
    chat = client.post("/chat", json=chat_body(project, model_config={**MOCK_CONFIG, "temperature": 0.4}))
    chat_config = chat.json()["data"][0]["model_config_id"]
    same = create(client, log_body(project, config={**MOCK_CONFIG, "temperature": 0.4, "endpoint": "chat"}))
    typed = create(client, log_body(project, config={**MOCK_CONFIG, "temperature": 0.4, "type": "model"}))
    assert get(client, same["id"])["config_id"] == chat_config
    assert get(client, typed["id"])["config_id"] != chat_config  # endpoint defaults to complete on /logs

    tool = {"type": "tool", "name": "lookup", "description": "Finds things", "parameters": {"type": "object"}}
    first = get(client, create(client, log_body(project, config=tool, output="found"))["id"])
    again = get(client, create(client, log_body(project, config=dict(tool)))["id"])
    assert first["config_id"] == again["config_id"]
    config = first["config"]
    assert config["type"] == "tool" and config["name"] == "lookup" and config["status"] == "committed"
    assert config["description"] == "Finds things" and config["parameters"] == {"type": "object"}


def test_config_id_must_exist_in_the_organization(client: httpx.Client, other: httpx.Client) -> None:
    project = unique()
    first = get(client, create(client, log_body(project))["id"])
    by_id = create(client, {"config_id": first["config_id"], "output": "reused"})
    assert by_id["project_id"] == first["project_id"]  # no project given: the config's project
    assert get(client, by_id["id"])["config"]["id"] == first["config_id"]

    missing = client.post("/logs", json={"project": project, "config_id": "config_doesnotexist0000000"})
    assert missing.status_code == 404 and "config_doesnotexist0000000" in missing.json()["detail"]
    foreign = other.post("/logs", json={"project": project, "config_id": first["config_id"]})
    assert foreign.status_code == 404
    assert detail_loc(client.post("/logs", json={"project": project})) == ["body", "config"]
    both = client.post("/logs", json={**log_body(project), "config_id": first["config_id"]})
    assert detail_loc(both) == ["body", "config_id"]
    new_name = unique()
    elsewhere = client.post("/logs", json={"project": new_name, "config_id": first["config_id"]})
    assert elsewhere.status_code == 422 and detail_loc(elsewhere) == ["body", "config_id"]
    assert "belongs to another project" in elsewhere.json()["detail"][0]["msg"]
    listed = client.get("/projects", params={"filter": new_name}).json()["records"]
    assert listed == []  # the refused log made no project
    same = client.post("/logs", json={"project_id": first["project_id"], "config_id": first["config_id"]})
    assert same.status_code == 200, same.text
    bad_tool = client.post("/logs", json=log_body(project, config={"type": "tool"}))
    assert detail_loc(bad_tool) == ["body", "config", "tool", "name"]


def test_a_batch_mirrors_its_body_and_is_all_or_nothing(client: httpx.Client) -> None:
    project = unique()
    created = create(client, [log_body(project, output="one"), log_body(project, output="two")])
    assert isinstance(created, list) and len(created) == 2
    assert created[0]["project_id"] == created[1]["project_id"]
    project_id = created[0]["project_id"]

    invalid = client.post("/logs", json=[log_body(project), log_body(project, inputs="not an object")])
    assert detail_loc(invalid) == ["body", 1, "inputs"]
    reference = unique("ref")
    same_batch_parent = [
        log_body(project, reference_id=reference),
        log_body(project, parent_reference_id=reference),
    ]
    assert detail_loc(client.post("/logs", json=same_batch_parent)) == ["body", 1, "parent_reference_id"]
    twice = [log_body(project, reference_id=reference), log_body(project, reference_id=reference)]
    assert client.post("/logs", json=twice).status_code == 409
    assert listing(client, project_id)["total"] == 2, "a rejected batch must write nothing"
    assert client.post("/logs", json=[]).json() == []
    assert detail_loc(client.post("/logs", content=b"{not json")) == ["body"]


def test_reference_ids_are_unique_per_organization(client: httpx.Client, other: httpx.Client) -> None:
    reference = unique("ref")
    create(client, log_body(unique(), reference_id=reference))
    reused = client.post("/logs", json=log_body(unique(), reference_id=reference))
    assert reused.status_code == 409
    assert reference in reused.json()["detail"]
    # another organization has its own namespace of reference ids
    create(other, log_body(unique(), reference_id=reference))


def test_parents_and_sessions_resolve_by_id_and_reference(client: httpx.Client) -> None:
    project = unique()
    session_reference = unique("session")
    parent_reference = unique("parent")
    parent = create(
        client, log_body(project, reference_id=parent_reference, session_reference_id=session_reference)
    )
    assert parent["session_id"].startswith("sesh_")
    child = create(client, log_body(project, parent_reference_id=parent_reference, output="child"))
    assert child["session_id"] == parent["session_id"], "a child joins its parent's session"
    grandchild = create(client, log_body(project, parent_id=child["id"], session_id=parent["session_id"]))

    log = get(client, child["id"])
    assert log["parent_id"] == parent["id"] and log["parent_reference_id"] == parent_reference
    assert log["session_reference_id"] == session_reference
    assert get(client, grandchild["id"])["parent_id"] == child["id"]
    assert get(client, parent["id"])["reference_id"] == parent_reference

    assert client.post("/logs", json=log_body(project, parent_id="data_nope")).status_code == 404
    assert client.post("/logs", json=log_body(project, parent_reference_id=unique())).status_code == 404
    assert client.post("/logs", json=log_body(project, session_id="sesh_nope")).status_code == 404
    assert client.post("/logs", json=log_body(project, project_id="pr_nope")).status_code == 422
    assert client.post("/logs", json={**log_body(""), "project_id": None}).status_code == 422
    unknown_project = client.post("/logs", json={"project_id": "pr_nope", "config": MOCK_CONFIG})
    assert unknown_project.status_code == 404


# -- PATCH and DELETE -------------------------------------------------------------------------------------


def test_update_by_reference_and_by_id_changes_only_what_was_sent(client: httpx.Client) -> None:
    reference = unique("ref")
    created = create(client, log_body(unique(), reference_id=reference, duration=2.0, inputs={"k": "v"}))
    patched = client.patch("/logs", params={"reference_id": reference}, json={"output": "done"})
    assert patched.status_code == 200, patched.text
    log = patched.json()
    assert log["id"] == created["id"] and log["output"] == "done" and log["duration"] == 2.0
    assert log["inputs"] == {"k": "v"} and log["config"]["type"] == "model"

    by_id = client.patch(f"/logs/{created['id']}", json={"error": "boom", "duration": 3.5}).json()
    assert (by_id["output"], by_id["error"], by_id["duration"]) == ("done", "boom", 3.5)
    cleared = client.patch(f"/logs/{created['id']}", json={"error": None}).json()
    assert cleared["error"] is None and cleared["output"] == "done"

    assert client.patch("/logs", params={"reference_id": unique()}, json={"output": "x"}).status_code == 404
    assert client.patch("/logs/data_nope", json={"output": "x"}).status_code == 404
    assert detail_loc(client.patch("/logs", json={"output": "x"})) == ["query", "reference_id"]
    assert detail_loc(client.patch(f"/logs/{created['id']}", json={"duration": "slow"})) == [
        "body",
        "duration",
    ]


def test_delete_several_and_children_become_roots(client: httpx.Client) -> None:
    project = unique()
    parent = create(client, log_body(project, session_reference_id=unique("s")))
    child = create(client, log_body(project, parent_id=parent["id"]))
    other_log = create(client, log_body(project))
    unknown = client.delete("/logs", params={"id": [other_log["id"], "data_nope"]})
    assert unknown.status_code == 404
    assert client.get(f"/logs/{other_log['id']}").status_code == 200, "a failed delete deletes nothing"

    deleted = client.delete("/logs", params={"id": [parent["id"], other_log["id"]]})
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"/logs/{parent['id']}").status_code == 404
    assert client.get(f"/logs/{other_log['id']}").status_code == 404
    assert get(client, child["id"])["parent_id"] is None
    assert client.delete("/logs").status_code == 204


# -- GET /logs and the export ----------------------------------------------------------------------------


def test_list_pages_newest_first(client: httpx.Client) -> None:
    project = unique()
    ids = [
        create(client, log_body(project, output=f"n{day}", created_at=f"2024-01-0{day}T12:00:00Z"))["id"]
        for day in range(1, 6)
    ]
    project_id = get(client, ids[0])["project_id"]
    first = listing(client, project_id, size=2)
    assert (first["page"], first["size"], first["total"]) == (0, 2, 5)
    assert [r["id"] for r in first["records"]] == [ids[4], ids[3]]
    last = listing(client, project_id, size=2, page=2)
    assert [r["id"] for r in last["records"]] == [ids[0]]
    default = listing(client, project_id)
    assert default["size"] == 50 and default["page"] == 0 and len(default["records"]) == 5
    assert default["records"][0]["config"]["type"] == "model"

    oldest = listing(client, project_id, sort="timestamp.asc", size=1)
    assert oldest["records"][0]["id"] == ids[0]
    ranged = listing(client, project_id, start_date="2024-01-02", end_date="2024-01-04")
    assert [r["output"] for r in ranged["records"]] == ["n4", "n3", "n2"]
    exact = listing(client, project_id, start_date="2024-01-02T12:00:00Z", end_date="2024-01-03T12:00:00Z")
    assert [r["output"] for r in exact["records"]] == ["n3", "n2"]

    export = client.post(f"/projects/{project_id}/export")
    assert export.status_code == 200
    assert export.json()["size"] == 10 and export.json()["total"] == 5
    assert [r["id"] for r in export.json()["records"]] == ids[::-1]
    paged = client.post(f"/projects/{project_id}/export", params={"page": 1, "size": 3}).json()
    assert [r["id"] for r in paged["records"]] == [ids[1], ids[0]]


def test_list_search_filters_and_sorts(client: httpx.Client) -> None:
    project = unique()
    a = create(client, log_body(project, output="The Answer is 42", inputs={"topic": "maths"}, source="web"))
    b = create(client, log_body(project, inputs={"topic": 'say "cheese"'}, metadata={"team": "Blue"}))
    c = create(client, log_body(project, inputs={"essay": LONG_TEXT}, source="api", output="short"))
    project_id = a["project_id"]

    def found(**params: Any) -> set[str]:
        return {r["id"] for r in listing(client, project_id, **params)["records"]}

    assert found(search="answer") == {a["id"]}  # output, case-insensitive
    assert found(search="MATHS") == {a["id"]}  # inputs
    assert found(search='"cheese"') == {b["id"]}  # quotes inside a JSON string
    assert found(search="ZEBRA-crossing") == {c["id"]}  # a long input stored as a blob
    assert found(search="100%") == set()
    assert found(metadata_search="blue") == {b["id"]}
    assert found(source_filter=["web", "api"]) == {a["id"], c["id"]}
    assert found(model_filter="mock-1") == {a["id"], b["id"], c["id"]}
    assert found(model_filter="gpt-4") == set()
    assert found(version_status="committed") == {a["id"], b["id"], c["id"]}
    assert found(version_status="uncommitted") == set()
    by_source = listing(client, project_id, sort=["source.desc", "timestamp.asc"])["records"]
    assert [r["source"] for r in by_source][:2] == ["web", "api"]
    assert [r["id"] for r in listing(client, project_id, sort="model.asc")["records"]] == [
        c["id"],
        b["id"],
        a["id"],
    ]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, ["query", "project_id"]),
        ({"page": -1}, ["query", "page"]),
        ({"size": 0}, ["query", "size"]),
        ({"start_date": "yesterday"}, ["query", "start_date"]),
        ({"end_date": "2024-13-01"}, ["query", "end_date"]),
        ({"sort": "colour.asc"}, ["query", "sort"]),
        ({"sort": "timestamp"}, ["query", "sort"]),
        ({"sort": "feedback-.asc"}, ["query", "sort"]),  # names no feedback type
        ({"version_status": "draft"}, ["query", "version_status"]),
    ],
)
def test_list_rejects_bad_queries(client: httpx.Client, params: dict[str, Any], loc: list[Any]) -> None:
    project_id = create(client, log_body(unique()))["project_id"]
    query = params if loc == ["query", "project_id"] else {"project_id": project_id, **params}
    assert detail_loc(client.get("/logs", params=query)) == loc


# -- logs written by /chat --------------------------------------------------------------------------------


def test_chat_logs_read_back_through_get_and_list(client: httpx.Client) -> None:
    project = unique()
    body = chat_body(
        project,
        "What is up?",
        model_config={**MOCK_CONFIG, "chat_template": [{"role": "system", "content": "You are {{who}}."}]},
        inputs={"who": "a mock"},
        metadata={"via": "chat"},
        user="user-1",
    )
    response = client.post("/chat", json=body).json()
    item = response["data"][0]
    log = get(client, item["id"])
    assert log["inputs"] == {"who": "a mock"}
    assert [(m["role"], m["content"]) for m in log["messages"]] == [
        ("system", "You are a mock."),
        ("user", "What is up?"),
    ]
    assert log["output"] == item["output"] and log["raw_output"] == item["raw_output"]
    assert log["output_message"] == item["output_message"]
    assert log["provider_request"] == response["provider_request"]
    assert log["provider_response"] == response["provider_responses"][0]
    assert log["finish_reason"] == "stop" and log["user"] == "user-1" and log["metadata"] == {"via": "chat"}
    usage = response["usage"]
    assert (log["prompt_tokens"], log["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["generation_tokens"],
    )
    assert log["tokens"] == usage["total_tokens"]
    assert log["config"]["id"] == item["model_config_id"] and log["config"]["endpoint"] == "chat"
    assert log["config"]["chat_template"][0]["content"] == "You are {{who}}."
    assert log["project"] == project and log["provider_latency"] is not None

    listed = listing(client, response["project_id"])["records"]
    assert [r["id"] for r in listed] == [item["id"]] and listed[0]["messages"] == log["messages"]


# -- organizations ----------------------------------------------------------------------------------------


def test_another_organization_sees_none_of_it(client: httpx.Client, other: httpx.Client) -> None:
    project = unique()
    reference = unique("ref")
    created = create(client, log_body(project, reference_id=reference, session_reference_id=unique("s")))
    project_id, log_id = created["project_id"], created["id"]

    assert other.get(f"/logs/{log_id}").status_code == 404
    assert other.get("/logs", params={"project_id": project_id}).status_code == 404
    assert other.post(f"/projects/{project_id}/export").status_code == 404
    assert other.patch(f"/logs/{log_id}", json={"output": "x"}).status_code == 404
    assert other.patch("/logs", params={"reference_id": reference}, json={"output": "x"}).status_code == 404
    assert other.delete("/logs", params={"id": log_id}).status_code == 404
    assert other.post("/logs", json=log_body(project, project_id=None, parent_id=log_id)).status_code == 404
    parent_by_reference = other.post("/logs", json=log_body(unique(), parent_reference_id=reference))
    assert parent_by_reference.status_code == 404
    session = other.post("/logs", json=log_body(unique(), session_id=created["session_id"]))
    assert session.status_code == 404
    on_project = other.post("/logs", json={"project_id": project_id, "config": MOCK_CONFIG})
    assert on_project.status_code == 404
    # the same project name in the other organization is a different project
    assert create(other, log_body(project))["project_id"] != project_id
    assert get(client, log_id)["output"] is None


def test_oldest_first_lists_a_calls_samples_in_order(client: httpx.Client) -> None:
    """The samples of one call share their time; their ids are made in order, so oldest first lists them
    as the call numbered them (ids made in one millisecond were ordered by chance)."""
    project = unique("samples")
    made: list[str] = []
    for stream in (False, True):
        answer = client.post("/chat", json=chat_body(project, "count", num_samples=5, stream=stream))
        assert answer.status_code == 200, answer.text
        if stream:
            events = [line for line in answer.text.splitlines() if line.startswith("data: ")]
            finals = [orjson.loads(line[6:])["data"][0] for line in events]
            by_index = {item["index"]: item["id"] for item in finals}
            made += [by_index[index] for index in range(5)]
        else:
            made += [item["id"] for item in answer.json()["data"]]
    project_id = client.get("/projects", params={"filter": project}).json()["records"][0]["id"]
    listed = client.get("/logs", params={"project_id": project_id, "sort": "timestamp.asc"}).json()
    assert [log["id"] for log in listed["records"]] == made
