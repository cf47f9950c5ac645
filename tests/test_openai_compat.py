"""The OpenAI-compatible door over HTTP with the built-in mock provider, on SQLite and PostgreSQL:
``POST /v1/chat/completions`` (plain, streamed, n>1, tools), ``GET /v1/models``, errors in OpenAI's shape,
and the logs it writes as seen through ``/v4``.

The official ``openai`` SDK drives the same door in ``test_openai_sdk.py``; the ``openai`` provider behind
it in ``test_openai_compat_upstream.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import MOCK_REPLY, chat_body, db_rows, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


@pytest.fixture
def door(server: Server) -> Iterator[httpx.Client]:
    """What the OpenAI SDK sends: the loopgate key as a bearer token."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=f"{server.base}/v1", headers=headers, timeout=30.0) as http:
        yield http


def completion(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "mock/mock-1", "messages": [{"role": "user", "content": text}], **extra}


def post(door: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return door.post("/chat/completions", json=body, headers=headers)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def log_ids(response: httpx.Response) -> list[str]:
    return response.headers["x-loopgate-log-ids"].split(",")


def v4_log(client: httpx.Client, log_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ok(client.get(f"/logs/{log_id}"))
    return found


def chunks(response: httpx.Response) -> list[Any]:
    """Every ``data:`` payload of a stream, in order: the chunk objects, then the literal ``[DONE]``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    datas = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [data if data == "[DONE]" else json.loads(data) for data in datas]


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    found: dict[str, Any] = body["error"]
    return found


# -- answers ------------------------------------------------------------------------------------------


def test_a_plain_completion_in_openai_shape_logged_in_the_default_project(
    door: httpx.Client, client: httpx.Client
) -> None:
    response = post(door, completion("Where is the treasure?"))
    body = ok(response)
    (log_id,) = log_ids(response)

    assert body["id"] == "chatcmpl-" + log_id.removeprefix("data_")
    assert body["object"] == "chat.completion"
    assert abs(body["created"] - time.time()) < 60
    assert body["model"] == "mock/mock-1"
    (choice,) = body["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": MOCK_REPLY + "Where is the treasure?", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    log = v4_log(client, log_id)
    assert log["project"] == "default"
    assert log["output"] == choice["message"]["content"]
    assert log["messages"][0]["content"] == "Where is the treasure?"
    assert (log["config"]["provider"], log["config"]["model"]) == ("mock", "mock-1")


def test_a_stream_sends_role_deltas_finish_then_done_after_the_log_is_committed(
    door: httpx.Client, client: httpx.Client
) -> None:
    project = unique("oa-stream")
    with door.stream(
        "POST",
        "/chat/completions",
        json=completion("one two three", stream=True),
        headers={"X-Loopgate-Project": project},
    ) as response:
        response.read()
    events = chunks(response)
    (log_id,) = log_ids(response)

    assert events[-1] == "[DONE]"
    objects = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in objects)
    assert {chunk["id"] for chunk in objects} == {"chatcmpl-" + log_id.removeprefix("data_")}
    assert all("usage" not in chunk for chunk in objects)  # not asked for
    deltas = [chunk["choices"][0] for chunk in objects]
    assert deltas[0]["delta"] == {"role": "assistant", "content": ""}
    texts = [d["delta"]["content"] for d in deltas[1:-1]]
    assert len(texts) == len((MOCK_REPLY + "one two three").split(" "))  # one chunk per word
    assert [d["finish_reason"] for d in deltas] == [None] * (len(deltas) - 1) + ["stop"]
    assert deltas[-1]["delta"] == {}

    log = v4_log(client, log_id)  # on disk already: [DONE] follows the commit
    assert log["project"] == project
    assert log["output"] == "".join(texts) == MOCK_REPLY + "one two three"


def test_a_stream_with_include_usage_ends_with_a_usage_chunk(door: httpx.Client) -> None:
    body = completion("count me", stream=True, stream_options={"include_usage": True})
    events = chunks(post(door, body))
    assert events[-1] == "[DONE]"
    *deltas, last = events[:-1]
    assert all(chunk["usage"] is None for chunk in deltas)
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] > 0
    assert (
        last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )


def test_n_samples_plain_and_streamed(door: httpx.Client, client: httpx.Client) -> None:
    response = post(door, completion("several", n=3))
    body = ok(response)
    ids = log_ids(response)
    assert len(ids) == len(set(ids)) == 3
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["choices"][2]["message"]["content"] == MOCK_REPLY + "several (sample 3)"
    assert [v4_log(client, i)["output"] for i in ids] == [c["message"]["content"] for c in body["choices"]]

    streamed = post(door, completion("several", n=2, stream=True))
    events = chunks(streamed)
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in events[:-1]:
        (choice,) = chunk["choices"]
        texts[choice["index"]] = texts.get(choice["index"], "") + (choice["delta"].get("content") or "")
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
    assert texts == {0: MOCK_REPLY + "several", 1: MOCK_REPLY + "several (sample 2)"}
    assert finishes == {0: "stop", 1: "stop"}
    assert len(log_ids(streamed)) == 2


def test_tools_plain_and_streamed(door: httpx.Client, client: httpx.Client) -> None:
    body = completion("What is the weather?", tools=[TOOL], tool_choice="required")
    response = post(door, body)
    (choice,) = ok(response)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    (call,) = message["tool_calls"]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "mock", "days": 0}
    log = v4_log(client, log_ids(response)[0])
    assert log["output_message"]["tool_calls"][0]["id"] == call["id"]
    assert log["config"]["tools"][0]["name"] == "get_weather"

    events = chunks(post(door, {**body, "stream": True}))
    tool_deltas = [
        c["choices"][0]["delta"]["tool_calls"]
        for c in events[:-1]
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert tool_deltas == [[{"index": 0, "id": call["id"], "type": "function", "function": call["function"]}]]
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"

    # The result goes back as OpenAI code sends it: the assistant's tool_calls, then a tool message.
    follow_up = completion(
        "thanks",
        tools=[TOOL],
        messages=[
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
    )
    answered = post(door, follow_up)
    assert ok(answered)["choices"][0]["message"]["content"] == MOCK_REPLY + "thanks"
    logged = v4_log(client, log_ids(answered)[0])["messages"]
    assert [m["role"] for m in logged] == ["user", "assistant", "tool", "user"]
    assert logged[2]["tool_call_id"] == call["id"]


def test_developer_messages_are_system_messages(door: httpx.Client, client: httpx.Client) -> None:
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    response = post(door, completion(messages=messages))
    ok(response)
    logged = v4_log(client, log_ids(response)[0])["messages"]
    assert [(m["role"], m["content"]) for m in logged] == [("system", "Be brief."), ("user", "hi")]


# -- where the log goes -------------------------------------------------------------------------------


def test_project_metadata_session_parent_and_reference_headers(
    door: httpx.Client, client: httpx.Client
) -> None:
    project, session_key, reference = unique("oa-tree"), unique("sess"), unique("ref")
    first = post(
        door,
        completion("parent", metadata={"team": "search", "ticket": "42"}, user="u-1"),
        **{
            "X-Loopgate-Project": project,
            "X-Loopgate-Session-Reference-Id": session_key,
            "X-Loopgate-Reference-Id": reference,
        },
    )
    ok(first)
    session_id = first.headers["x-loopgate-session-id"]
    assert session_id.startswith("sesh_")
    (parent_id,) = log_ids(first)

    by_id = post(
        door, completion("child by id"), **{"X-Loopgate-Project": project, "X-Loopgate-Parent-Id": parent_id}
    )
    by_ref = post(
        door,
        completion("child by reference"),
        **{"X-Loopgate-Project": project, "X-Loopgate-Parent-Reference-Id": reference},
    )
    joined = post(
        door,
        completion("same session"),
        **{"X-Loopgate-Project": project, "X-Loopgate-Session-Id": session_id},
    )
    for response in (by_id, by_ref, joined):
        ok(response)
        assert response.headers["x-loopgate-session-id"] == session_id  # children join the parent's session

    parent = v4_log(client, parent_id)
    assert parent["metadata"] == {"team": "search", "ticket": "42"}
    assert parent["reference_id"] == reference
    assert parent["session_reference_id"] == session_key
    assert parent["project"] == project
    listed = ok(client.get("/logs", params={"project_id": parent["project_id"], "size": 10}))
    assert {log["id"] for log in listed["records"]} == {
        parent_id,
        *log_ids(by_id),
        *log_ids(by_ref),
        *log_ids(joined),
    }
    children = [v4_log(client, log_ids(r)[0]) for r in (by_id, by_ref)]
    assert [c["parent_id"] for c in children] == [parent_id, parent_id]
    session = ok(client.get(f"/sessions/{session_id}"))
    assert session["datapoints_count"] == 4


def test_the_config_version_is_the_one_a_v4_inline_config_gets(
    door: httpx.Client, client: httpx.Client
) -> None:
    project = unique("oa-dedup")
    params = {"temperature": 0.5, "max_tokens": 30, "stop": ["zzz"], "seed": 7}
    a = post(door, completion("one", **params), **{"X-Loopgate-Project": project})
    b = post(door, completion("two", **params), **{"X-Loopgate-Project": project})
    v4 = client.post(
        "/chat",
        json=chat_body(project, "three", model_config={"provider": "mock", "model": "mock-1", **params}),
    )
    other = post(door, completion("four", temperature=0.7), **{"X-Loopgate-Project": project})
    configs = [v4_log(client, log_ids(r)[0])["config_id"] for r in (a, b, other)]
    assert configs[0] == configs[1] == ok(v4)["data"][0]["model_config_id"]
    assert configs[2] != configs[0]


# -- errors in OpenAI's shape -------------------------------------------------------------------------


def test_keys_missing_wrong_and_in_x_api_key(server: Server) -> None:
    url = f"{server.base}/v1/chat/completions"
    missing = error(httpx.post(url, json=completion()), 401)
    assert missing["code"] == "invalid_api_key" and "loopgate keys create" in missing["message"]
    wrong = error(httpx.post(url, json=completion(), headers={"Authorization": "Bearer lg_wrong"}), 401)
    assert wrong == {
        "message": "Invalid API key",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    # X-API-KEY wins over a placeholder bearer token (the SDK insists on some api_key).
    headers = {"X-API-KEY": server.api_key, "Authorization": "Bearer placeholder"}
    assert httpx.post(url, json=completion(), headers=headers).status_code == 200
    assert error(httpx.get(f"{server.base}/v1/models"), 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock/mock-1"}, "messages"),
        (completion(messages=[]), "messages"),
        (completion(messages=[{"role": "function", "content": "x", "name": "f"}]), "messages[0].role"),
        (completion(n=0), "n"),
        (completion(temperature=3), "temperature"),
        (completion(max_tokens=0), "max_tokens"),
        (completion(metadata={"k": 1}), "metadata.k"),
        (
            completion(tools=[{"type": "function", "function": {"description": "no name"}}]),
            "tools[0].function.name",
        ),
        (completion(tool_choice="sometimes"), "tool_choice"),
        (completion(response_format={"type": "yaml"}), "response_format.type"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        (completion(model=""), "model"),
    ],
)
def test_bad_bodies_are_400_naming_the_parameter(
    door: httpx.Client, body: dict[str, Any], param: str
) -> None:
    found = error(post(door, body), 400)
    assert found["type"] == "invalid_request_error"
    assert found["param"] == param, found


def test_bodies_that_are_not_json_objects_are_400(door: httpx.Client) -> None:
    for content in (b"{not json", b"[1, 2]", b"", b"null"):
        found = error(door.post("/chat/completions", content=content), 400)
        assert found["type"] == "invalid_request_error"


def test_header_errors_name_the_header(door: httpx.Client) -> None:
    both = post(
        door, completion(), **{"X-Loopgate-Session-Id": "sesh_x", "X-Loopgate-Session-Reference-Id": "r"}
    )
    assert error(both, 400)["param"] == "X-Loopgate-Session-Reference-Id"
    empty = error(post(door, completion(), **{"X-Loopgate-Project": ""}), 400)
    assert empty["param"] == "X-Loopgate-Project"
    many = error(post(door, completion(n=2), **{"X-Loopgate-Reference-Id": unique("ref")}), 400)
    assert many["param"] == "X-Loopgate-Reference-Id"
    gone = error(post(door, completion(), **{"X-Loopgate-Session-Id": "sesh_doesnotexist"}), 404)
    assert gone["code"] == "not_found"
    orphan = error(post(door, completion(), **{"X-Loopgate-Parent-Id": "data_doesnotexist"}), 404)
    assert orphan["code"] == "not_found"
    reference = unique("ref")
    ok(post(door, completion(), **{"X-Loopgate-Reference-Id": reference}))
    taken = error(post(door, completion(), **{"X-Loopgate-Reference-Id": reference}), 409)
    assert reference in taken["message"]


def test_unknown_provider_prefix_is_model_not_found(door: httpx.Client) -> None:
    for model in ("nosuch/model-1", "mock/"):
        found = error(post(door, completion(model=model)), 404)
        assert (found["param"], found["code"]) == ("model", "model_not_found")
        assert "openai/" not in found["message"] or "LOOPGATE_UPSTREAMS" in found["message"]


def test_a_provider_without_a_key_says_where_one_goes(door: httpx.Client) -> None:
    found = error(post(door, completion(model="gpt-4o")), 400)  # a bare name goes to openai
    assert found["code"] == "missing_provider_key"
    assert "X-Provider-Api-Key" in found["message"] and "LOOPGATE_OPENAI_API_KEY" in found["message"]


@pytest.mark.parametrize(
    ("model", "key", "named", "unnamed"),
    [
        # No key and no endpoint: the endpoint can only come from the server, the key from either.
        (
            "openai_azure/my-deployment",
            None,
            ["LOOPGATE_OPENAI_AZURE_ENDPOINT", "X-Provider-Api-Key", "LOOPGATE_OPENAI_AZURE_API_KEY"],
            ["provider_api_keys"],
        ),
        # A key in the header: only the endpoint is missing, and no header can carry it.
        (
            "openai_azure/my-deployment",
            "azure-key-in-header",
            ["LOOPGATE_OPENAI_AZURE_ENDPOINT"],
            ["provider_api_keys", "X-Provider-Api-Key", "azure-key-in-header"],
        ),
        (
            "bedrock/anthropic.claude-3-haiku",
            None,
            ["X-Provider-Api-Key", "ACCESS_KEY_ID:SECRET_ACCESS_KEY", "LOOPGATE_BEDROCK_ACCESS_KEY_ID"],
            ["provider_api_keys"],
        ),
    ],
)
def test_azure_and_bedrock_say_where_their_credentials_go_through_the_door(
    door: httpx.Client, model: str, key: str | None, named: list[str], unnamed: list[str]
) -> None:
    headers = {"X-Provider-Api-Key": key} if key else {}
    found = error(post(door, completion(model=model), **headers), 400)
    assert found["code"] == "missing_provider_key"
    assert all(name in found["message"] for name in named), found["message"]
    assert not any(name in found["message"] for name in unnamed), found["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_statuses_pass_through_and_the_failure_is_logged(
    door: httpx.Client, client: httpx.Client, stream: bool
) -> None:
    project = unique("oa-fail")
    limited = post(door, completion("mock-error:429", stream=stream), **{"X-Loopgate-Project": project})
    found = error(limited, 429)  # refused before the stream started: a status, not a 200
    assert limited.headers["retry-after"] == "1"
    assert found["type"] == "rate_limit_error"
    assert "Mock provider error 429" in found["message"]
    teapot = error(
        post(door, completion("mock-error:418", stream=stream), **{"X-Loopgate-Project": project}), 418
    )
    assert teapot["type"] == "invalid_request_error"
    unavailable = error(post(door, completion("mock-error:503"), **{"X-Loopgate-Project": project}), 503)
    assert unavailable["type"] == "server_error"

    project_id = v4_log(client, log_ids(ok_response(door, project))[0])["project_id"]
    records = ok(client.get("/logs", params={"project_id": project_id, "size": 10}))["records"]
    failed = [r for r in records if r["error"]]
    assert len(failed) == 3
    assert all(r["error"].startswith("Mock: Mock provider error") for r in failed)


def ok_response(door: httpx.Client, project: str) -> httpx.Response:
    response = post(door, completion("fine"), **{"X-Loopgate-Project": project})
    ok(response)
    return response


def test_organizations_are_isolated(server: Server, door: httpx.Client) -> None:
    mine = post(door, completion(), **{"X-Loopgate-Session-Reference-Id": unique("s")})
    session_id = mine.headers["x-loopgate-session-id"]
    (log_id,) = log_ids(mine)
    other_key = server.create_key(org=unique("org"))
    headers = {"Authorization": f"Bearer {other_key}"}
    with httpx.Client(base_url=f"{server.base}/v1", headers=headers, timeout=30) as theirs:
        assert error(post(theirs, completion(), **{"X-Loopgate-Session-Id": session_id}), 404)
        assert error(post(theirs, completion(), **{"X-Loopgate-Parent-Id": log_id}), 404)
        fresh = post(theirs, completion())
        ok(fresh)
    with server.client(other_key) as their_v4:
        assert their_v4.get(f"/logs/{log_id}").status_code == 404
        assert their_v4.get(f"/logs/{log_ids(fresh)[0]}").status_code == 200


# -- models -------------------------------------------------------------------------------------------


def test_models_lists_what_can_be_routed(door: httpx.Client) -> None:
    listed = ok(door.get("/models"))
    assert listed["object"] == "list"
    # The session server has no provider keys nor upstreams: only the mock model can be named.
    assert listed["data"] == [{"id": "mock/mock-1", "object": "model", "created": 0, "owned_by": "loopgate"}]
    assert ok(door.get("/models/mock/mock-1"))["id"] == "mock/mock-1"
    assert error(door.get("/models/openai/gpt-4o"), 404)["code"] == "model_not_found"


# -- streams that end early, keys that must not stay -------------------------------------------------


def test_a_client_that_leaves_mid_stream_still_has_its_partial_output_logged(
    door: httpx.Client, server: Server
) -> None:
    body = completion("one two three four five six seven eight nine ten", stream=True, mock_delay_ms=100)
    received: list[str] = []
    with door.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        (log_id,) = log_ids(response)
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 4:
                break  # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 10
    rows: list[Any] = []
    while not rows and time.monotonic() < deadline:
        rows = db_rows(server.database, "SELECT status, error, output FROM logs WHERE id = ?", log_id)
        time.sleep(0.05)
    assert rows, "the partial stream was not logged"
    assert rows[0]["status"] == "partial"
    assert "disconnected" in rows[0]["error"]
    sent = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in received)
    assert rows[0]["output"].startswith(sent.strip())
    assert rows[0]["output"] != MOCK_REPLY + body["messages"][0]["content"]


def test_the_per_request_provider_key_is_never_stored(door: httpx.Client, server: Server) -> None:
    key = f"sk-door-never-stored-{uuid.uuid4().hex}"
    project = unique("oa-secret")
    headers = {"X-Loopgate-Project": project, "X-Provider-Api-Key": key}
    for body in (
        completion("a"),
        completion("b", stream=True),
        completion("c", n=2),
        completion("mock-error:418"),
    ):
        response = post(door, body, **headers)
        assert response.status_code in (200, 418), response.text
        assert key not in response.text and key not in str(response.headers)
    stored = db_rows(
        server.database,
        "SELECT logs.* FROM logs JOIN projects ON logs.project_id = projects.id WHERE projects.name = ?",
        project,
    )
    assert len(stored) == 5
    if isinstance(server.database, Path):  # the whole file and its WAL, byte for byte
        files = sorted(server.database.parent.glob(server.database.name + "*"))
        contents = b"".join(path.read_bytes() for path in files)
        assert project.encode() in contents  # the search does see what was written
        assert key.encode() not in contents
    else:
        for table in ("logs", "blobs", "model_configs", "projects", "sessions"):
            rows = db_rows(server.database, f"SELECT * FROM {table}")  # noqa: S608
            assert all(key not in str(value) for row in rows for value in dict(row).values()), table
    assert server.log_path is not None
    assert key.encode() not in server.log_path.read_bytes()
