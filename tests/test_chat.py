"""POST /v4/chat over HTTP against a real server process (mock provider): every ChatRequest field."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import Server
from tests.helpers import MOCK_CONFIG, chat_body, db_rows, log_row, sse_events, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def test_response_has_every_chat_response_field(client: httpx.Client) -> None:
    body = chat_body(unique(), "hi", user="u-1", metadata={"trace": 7})
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    for key in (
        "project_id",
        "num_samples",
        "logprobs",
        "suffix",
        "user",
        "data",
        "usage",
        "metadata",
        "provider_responses",
        "provider_request",
        "session_id",
        "tool_choice",
    ):
        assert key in payload
    item = payload["data"][0]
    for key in (
        "id",
        "index",
        "output",
        "raw_output",
        "inputs",
        "finish_reason",
        "model_config_id",
        "tool_results",
        "messages",
        "tool_call",
        "tool_calls",
        "output_message",
    ):
        assert key in item
    assert item["id"].startswith("data_") and len(item["id"]) == 26
    assert payload["project_id"].startswith("pr_")
    assert item["model_config_id"].startswith("config_")
    assert item["output"] == "This is a mock response to: hi"
    assert item["finish_reason"] == "stop"
    assert item["output_message"]["role"] == "assistant"
    assert payload["user"] == "u-1" and payload["metadata"] == {"trace": 7}
    assert payload["provider_request"]["user"] == "u-1"
    usage = payload["usage"]
    assert usage["prompt_tokens"] > 0 and usage["generation_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["generation_tokens"]


def test_project_created_once_and_config_deduplicated(client: httpx.Client) -> None:
    project = unique()
    config = {"provider": "mock", "model": "mock-1", "temperature": 0.5}
    first = client.post("/chat", json=chat_body(project, model_config=config)).json()
    second = client.post(
        "/chat", json=chat_body(project, "other text", model_config={**config, "name": "x"})
    ).json()
    changed = client.post(
        "/chat", json=chat_body(project, model_config={**config, "temperature": 0.7})
    ).json()
    seeded = client.post("/chat", json=chat_body(project, model_config={**config, "seed": 3})).json()
    legacy_seed = client.post("/chat", json=chat_body(project, model_config=config, seed=3)).json()
    assert first["project_id"] == second["project_id"] == changed["project_id"]
    first_config = first["data"][0]["model_config_id"]
    assert second["data"][0]["model_config_id"] == first_config  # a name is a label, not a parameter
    assert changed["data"][0]["model_config_id"] != first_config
    assert seeded["data"][0]["model_config_id"] not in (first_config, changed["data"][0]["model_config_id"])
    # The deprecated top-level seed is honoured: it lands in the config like model_config.seed.
    assert legacy_seed["data"][0]["model_config_id"] == seeded["data"][0]["model_config_id"]
    assert legacy_seed["provider_request"]["seed"] == 3


def test_project_id_must_exist(client: httpx.Client) -> None:
    known = client.post("/chat", json=chat_body(unique())).json()["project_id"]
    ok = client.post("/chat", json={**chat_body("x"), "project": None, "project_id": known})
    assert ok.status_code == 200 and ok.json()["project_id"] == known
    missing = client.post("/chat", json={**chat_body("x"), "project": None, "project_id": "pr_doesnotexist"})
    assert missing.status_code == 404
    assert "pr_doesnotexist" in missing.json()["detail"]


def test_template_rendered_before_messages(client: httpx.Client) -> None:
    config = {
        "provider": "mock",
        "model": "mock-1",
        "chat_template": [{"role": "system", "content": "You are {{ person }}, aged {{age}}."}],
    }
    body = chat_body(unique(), "who are you?", model_config=config, inputs={"person": "Bob", "age": 42})
    payload = client.post("/chat", json=body).json()
    messages = payload["data"][0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "You are Bob, aged 42."
    assert payload["provider_request"]["messages"][0]["content"] == "You are Bob, aged 42."
    assert payload["data"][0]["inputs"] == {"person": "Bob", "age": 42}


def test_missing_template_variable_is_422_naming_it(client: httpx.Client) -> None:
    config = {
        "provider": "mock",
        "model": "m",
        "chat_template": [{"role": "system", "content": "Hi {{name}}"}],
    }
    response = client.post("/chat", json=chat_body(unique(), model_config=config, inputs={"other": 1}))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "inputs", "name"]
    assert "name" in error["msg"] and error["type"]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"project_id": "pr_x"}, "project_id"),
        ({"session_id": "sesh_x", "session_reference_id": "r"}, "session_reference_id"),
        ({"parent_id": "data_x", "parent_reference_id": "r"}, "parent_reference_id"),
    ],
)
def test_both_of_a_pair_is_422(client: httpx.Client, extra: dict[str, str], loc: str) -> None:
    response = client.post("/chat", json=chat_body(unique(), **extra))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == loc


def test_neither_project_nor_project_id_is_422(client: httpx.Client) -> None:
    body = chat_body("x")
    del body["project"]
    response = client.post("/chat", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "project"]


@pytest.mark.parametrize(
    "body",
    [
        {"project": "p", "messages": []},  # no model_config
        {"project": "p", "model_config": {"provider": "mock"}, "messages": []},  # no model
        {"project": "p", "model_config": {"model": "m", "provider": "nope"}, "messages": []},
        {"project": "p", "model_config": {"model": "m"}, "messages": [{"role": "robot", "content": "x"}]},
        {"project": "p", "model_config": {"model": "m"}, "messages": [], "num_samples": 0},
        {"project": "p", "model_config": {"model": "m"}, "messages": [], "unknown_field": 1},
    ],
)
def test_schema_errors_are_422_in_fastapi_shape(client: httpx.Client, body: dict[str, object]) -> None:
    response = client.post("/chat", json=body)
    assert response.status_code == 422, response.text
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}


def test_malformed_json_is_422_not_500(client: httpx.Client) -> None:
    response = client.post("/chat", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_provider_api_keys_ignored_when_unknown_member(client: httpx.Client) -> None:
    body = chat_body(unique(), provider_api_keys={"openai": "sk-x", "mock": "m", "groq": "whatever"})
    assert client.post("/chat", json=body).status_code == 200


def test_num_samples_each_logged(client: httpx.Client, server: Server) -> None:
    payload = client.post("/chat", json=chat_body(unique(), num_samples=3)).json()
    assert [item["index"] for item in payload["data"]] == [0, 1, 2]
    assert len({item["id"] for item in payload["data"]}) == 3
    for item in payload["data"]:
        row = log_row(server.database, item["id"])
        assert row is not None and row["output"] == item["output"] and row["sample_index"] == item["index"]


def test_sessions_by_reference_and_parent(client: httpx.Client, server: Server) -> None:
    reference = unique("session")
    first = client.post("/chat", json=chat_body(unique(), session_reference_id=reference)).json()
    second = client.post("/chat", json=chat_body(unique(), session_reference_id=reference)).json()
    other = client.post("/chat", json=chat_body(unique(), session_reference_id=unique("session"))).json()
    assert first["session_id"].startswith("sesh_")
    assert second["session_id"] == first["session_id"] != other["session_id"]
    parent_id = first["data"][0]["id"]
    # A child named only by its parent joins the parent's session.
    child = client.post("/chat", json=chat_body(unique(), parent_id=parent_id)).json()
    assert child["session_id"] == first["session_id"]
    row = log_row(server.database, child["data"][0]["id"])
    assert row is not None and row["parent_id"] == parent_id and row["session_id"] == first["session_id"]
    by_id = client.post("/chat", json=chat_body(unique(), session_id=first["session_id"])).json()
    assert by_id["session_id"] == first["session_id"]


def test_unknown_session_and_parent_are_404(client: httpx.Client) -> None:
    assert client.post("/chat", json=chat_body(unique(), session_id="sesh_nope")).status_code == 404
    assert client.post("/chat", json=chat_body(unique(), parent_id="data_nope")).status_code == 404
    assert client.post("/chat", json=chat_body(unique(), parent_reference_id="nope")).status_code == 404


def test_save_false_stores_no_content_but_keeps_the_log(client: httpx.Client, server: Server) -> None:
    body = chat_body(unique(), "a secret question", save=False, metadata={"kept": True}, source="sdk")
    payload = client.post("/chat", json=body).json()
    assert payload["data"][0]["output"]
    row = log_row(server.database, payload["data"][0]["id"])
    assert row is not None
    assert row["save"] == 0 and row["output"] is None and row["payload"] is None
    assert orjson.loads(row["metadata"]) == {"kept": True} and row["source"] == "sdk"
    assert row["config_id"] == payload["data"][0]["model_config_id"]
    assert not db_rows(server.database, "SELECT hash FROM blobs WHERE data LIKE ?", "%a secret question%")


def test_return_inputs_false(client: httpx.Client) -> None:
    config = {"provider": "mock", "model": "m", "chat_template": [{"role": "system", "content": "{{x}}"}]}
    body = chat_body(unique(), model_config=config, inputs={"x": "y"}, return_inputs=False)
    assert client.post("/chat", json=body).json()["data"][0]["inputs"] == {}


def test_metadata_source_and_datapoint_stored(client: httpx.Client, server: Server) -> None:
    body = chat_body(unique(), metadata={"a": [1, 2]}, source="batch-job", source_datapoint_id="dp_1")
    log_id = client.post("/chat", json=body).json()["data"][0]["id"]
    row = log_row(server.database, log_id)
    assert row is not None
    assert orjson.loads(row["metadata"]) == {"a": [1, 2]}
    assert row["source"] == "batch-job" and row["source_datapoint_id"] == "dp_1"


def test_tools_and_tool_choice(client: httpx.Client) -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    config = {"provider": "mock", "model": "m", "tools": [tool]}
    auto = client.post(
        "/chat", json=chat_body(unique(), "call get_weather please", model_config=config)
    ).json()
    item = auto["data"][0]
    assert item["finish_reason"] == "tool_call"
    assert item["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "mock"}'}
    assert item["tool_call"] == {"name": "get_weather", "arguments": '{"city": "mock"}'}
    assert item["output_message"]["tool_calls"] == item["tool_calls"]
    assert auto["provider_request"]["tool_choice"] == "auto"
    assert auto["provider_request"]["tools"][0] == {"type": "function", "function": tool}
    none = client.post(
        "/chat", json=chat_body(unique(), "get_weather", model_config=config, tool_choice="none")
    )
    assert none.json()["data"][0]["finish_reason"] == "stop"
    forced = {"type": "function", "function": {"name": "get_weather"}}
    chosen = client.post(
        "/chat", json=chat_body(unique(), "no mention", model_config=config, tool_choice=forced)
    )
    assert chosen.json()["data"][0]["finish_reason"] == "tool_call"
    assert chosen.json()["tool_choice"] == forced
    legacy = client.post(
        "/chat", json=chat_body(unique(), "x", model_config=config, tool_call={"name": "get_weather"})
    )
    assert legacy.json()["provider_request"]["tool_choice"] == forced


def test_tool_result_messages_are_accepted(client: httpx.Client) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = chat_body(unique(), "thanks")
    body["messages"] = [
        {"role": "user", "content": "use f"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ]
    payload = client.post("/chat", json=body).json()
    assert payload["data"][0]["output"] == "This is a mock response to: and now?"
    sent = payload["provider_request"]["messages"]
    assert sent[1]["tool_calls"] == [call] and sent[2]["tool_call_id"] == "call_1"


def test_object_arguments_of_sdk_0518_are_kept_json_encoded(client: httpx.Client) -> None:
    """0.5.18 sent a message's tool_call arguments as an object; v4 (and 0.7.35, which types them as a
    string) reads a JSON-encoded string, so that is what the log keeps."""
    body = chat_body(unique(), "thanks")
    legacy = {"name": "f", "arguments": {"city": "Oslo", "days": 3}}
    body["messages"] = [
        {"role": "assistant", "content": None, "tool_call": legacy},
        {"role": "user", "content": "and now?"},
    ]
    answer = client.post("/chat", json=body)
    assert answer.status_code == 200, answer.text
    log = client.get(f"/logs/{answer.json()['data'][0]['id']}").json()
    stored = log["messages"][0]["tool_call"]
    assert stored["name"] == "f" and isinstance(stored["arguments"], str)
    assert orjson.loads(stored["arguments"]) == {"city": "Oslo", "days": 3}


def test_response_format_json_object(client: httpx.Client) -> None:
    body = chat_body(unique(), "give json", response_format={"type": "json_object"})
    payload = client.post("/chat", json=body).json()
    assert orjson.loads(payload["data"][0]["output"])["response"].endswith("give json")
    assert payload["provider_request"]["response_format"] == {"type": "json_object"}


def test_finish_reason_length_and_stop(client: httpx.Client) -> None:
    config = {"provider": "mock", "model": "m", "max_tokens": 3}
    assert (
        client.post("/chat", json=chat_body(unique(), model_config=config)).json()["data"][0]["finish_reason"]
        == "length"
    )
    stop = {"provider": "mock", "model": "m", "stop": "mock"}
    assert (
        client.post("/chat", json=chat_body(unique(), model_config=stop)).json()["data"][0]["output"]
        == "This is a"
    )


def test_provider_error_is_mapped_and_logged(client: httpx.Client, server: Server) -> None:
    project = unique()
    response = client.post("/chat", json=chat_body(project, "mock-error:429"))
    assert response.status_code == 429
    detail = response.json()["detail"]
    assert detail["type"] == "rate_limit_error" and detail["code"] == 429 and detail["origin"] == "Mock"
    rows = db_rows(
        server.database,
        "SELECT l.status, l.error FROM logs l JOIN projects p ON p.id = l.project_id WHERE p.name = ?",
        project,
    )
    assert [(r["status"], "429" in r["error"]) for r in rows] == [("error", True)]


def test_missing_provider_key_names_it(client: httpx.Client) -> None:
    body = chat_body(unique(), model_config={"provider": "openai", "model": "gpt-4o"})
    response = client.post("/chat", json=body)
    assert response.status_code == 400
    message = response.json()["detail"]["message"]
    assert "provider_api_keys.openai" in message and "LOOPGATE_OPENAI_API_KEY" in message


def test_stream_events_and_log(client: httpx.Client, server: Server) -> None:
    response = client.post("/chat", json=chat_body(unique(), "stream me", stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert len(events) > 3
    assert all(len(e["data"]) == 1 and {"id", "index", "output"} <= set(e["data"][0]) for e in events)
    ids = {e["data"][0]["id"] for e in events}
    assert len(ids) == 1
    assert "".join(e["data"][0]["output"] for e in events) == "This is a mock response to: stream me"
    assert [e["data"][0]["finish_reason"] for e in events][-1] == "stop"
    assert all(e["data"][0]["finish_reason"] is None for e in events[:-1])
    assert events[-1]["usage"]["total_tokens"] > 0
    row = log_row(server.database, ids.pop())
    assert (
        row is not None
        and row["status"] == "complete"
        and row["output"] == "This is a mock response to: stream me"
    )


def test_stream_events_are_ascii_with_the_same_text(client: httpx.Client, server: Server) -> None:
    """Non-ASCII goes out as JSON escapes: TypeScript SDK 0.5.x decodes every network read on its own, so a
    UTF-8 character split between two reads would reach it as U+FFFD (tests/e2e/test_ts_sdk_chat.py)."""
    text = "naïve café ☃ 日本語 🚀 " + "長" * 5000  # the last word is one ~15 KB delta
    config = {**MOCK_CONFIG, "chat_template": [{"role": "system", "content": "Speak {{lang}}."}]}
    body = chat_body(unique(), text, model_config=config, inputs={"lang": "français"}, stream=True)
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    assert response.content.isascii()
    events = sse_events(response.text)
    expected = "This is a mock response to: " + text
    assert "".join(e["data"][0]["output"] for e in events) == expected
    final = events[-1]["data"][0]
    assert final["output_message"]["content"] == expected
    assert final["inputs"] == {"lang": "français"}
    row = log_row(server.database, final["id"])
    assert row is not None and row["output"] == expected  # stored as the characters, not the escapes


def test_stream_num_samples_interleave(client: httpx.Client) -> None:
    response = client.post("/chat", json=chat_body(unique(), "two", stream=True, num_samples=2))
    events = sse_events(response.text)
    indexes = [e["data"][0]["index"] for e in events]
    assert set(indexes) == {0, 1}
    assert indexes[:2] == [0, 1]  # interleaved, not one sample after the other
    finals = [e for e in events if e["data"][0]["finish_reason"]]
    assert sorted(e["data"][0]["index"] for e in finals) == [0, 1]
    texts = {i: "".join(e["data"][0]["output"] for e in events if e["data"][0]["index"] == i) for i in (0, 1)}
    assert texts[1] == texts[0] + " (sample 2)"


def test_stream_tool_call(client: httpx.Client) -> None:
    config = {
        "provider": "mock",
        "model": "m",
        "tools": [{"name": "lookup", "parameters": {"type": "object"}}],
    }
    events = sse_events(
        client.post("/chat", json=chat_body(unique(), "lookup", model_config=config, stream=True)).text
    )
    final = events[-1]["data"][0]
    assert final["finish_reason"] == "tool_call"
    assert final["tool_calls"][0]["function"]["name"] == "lookup"
    assert final["output_message"]["tool_calls"][0]["id"] == final["tool_calls"][0]["id"]


def test_stream_provider_error_before_first_token_keeps_status(client: httpx.Client) -> None:
    response = client.post("/chat", json=chat_body(unique(), "mock-error:503", stream=True))
    assert response.status_code == 503
    assert response.json()["detail"]["origin"] == "Mock"


def test_auth_required(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        missing = anonymous.post("/chat", json=chat_body("p"))
        assert missing.status_code == 401 and isinstance(missing.json()["detail"], str)
        wrong = anonymous.post("/chat", json=chat_body("p"), headers={"X-API-KEY": "lg_wrong"})
        assert wrong.status_code == 401 and wrong.json() == {"detail": "Invalid API key"}
    with server.client(f"Bearer {server.api_key}") as bearer:
        assert bearer.post("/chat", json=chat_body(unique())).status_code == 200


def test_organizations_are_isolated(server: Server) -> None:
    other_key = server.create_key(org=unique("org"))
    with server.client() as mine, server.client(other_key) as theirs:
        project = unique()
        own = mine.post("/chat", json=chat_body(project)).json()
        foreign = theirs.post("/chat", json=chat_body(project)).json()
        assert foreign["project_id"] != own["project_id"]  # same name, another organization's project
        log_id, session = own["data"][0]["id"], own["project_id"]
        assert (
            theirs.post("/chat", json={**chat_body("x"), "project": None, "project_id": session}).status_code
            == 404
        )
        assert theirs.post("/chat", json=chat_body(unique(), parent_id=log_id)).status_code == 404


def test_api_keys_stored_hashed(server: Server) -> None:
    rows = db_rows(server.database, "SELECT key_hash FROM api_keys")
    assert rows and all(len(r["key_hash"]) == 64 for r in rows)
    if isinstance(server.database, Path):  # the whole file: the key is nowhere in it
        assert server.api_key.encode() not in server.database.read_bytes()
    else:
        stored = db_rows(server.database, "SELECT * FROM api_keys")
        assert all(server.api_key not in str(value) for row in stored for value in row.values())
