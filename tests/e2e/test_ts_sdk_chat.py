"""Generation driven by the official humanloop TypeScript SDK 0.5.36, end to end.

``tests/e2e/ts/chat_scenarios.mjs`` runs once under node against the session's ``loopgate serve`` (SQLite,
mock provider) and records what the SDK handed back: ``response.data`` of plain calls, and every chunk a
``*Stream`` method yielded (the SDK picks ``output``, ``id``, ``index``, ``finish_reason``,
``model_config_id``, ``tool_calls``, ``output_message``, ``tool_results`` and the top-level ``project_id``
out of each event, and drops an event lacking ``output`` or ``id``, so chunks are counted). These tests
assert on that and read the server's state back over HTTP.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server
from tests.e2e.sdk import result, run_ts_scenarios, run_ts_source
from tests.helpers import MOCK_REPLY

pytestmark = pytest.mark.e2e

LOG_ID = re.compile(r"^data_[A-Za-z0-9]{21}$")
CONFIG_ID = re.compile(r"^(config|prv)_[A-Za-z0-9]+$")
SESSION_ID = re.compile(r"^sesh_[A-Za-z0-9]+$")


@pytest.fixture(scope="module")
def ts(server: Server) -> dict[str, Any]:
    """Every scenario, run once in one node process."""
    return run_ts_scenarios("chat_scenarios.mjs", server, "all")


def stored(client: httpx.Client, log_id: str) -> dict[str, Any]:
    response = client.get(f"/logs/{log_id}")
    assert response.status_code == 200, response.text
    log: dict[str, Any] = response.json()
    return log


def roles_and_contents(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in messages]


def joined(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["output"] or "" for chunk in chunks)


def test_chat_renders_the_template_and_logs_it(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "chat_template")
    assert got["status"] == 200
    body = got["body"]
    (item,) = body["data"]
    assert item["output"] == item["raw_output"] == MOCK_REPLY + "What is your name?"
    assert (item["index"], item["finish_reason"]) == (0, "stop")
    assert LOG_ID.match(item["id"])
    assert CONFIG_ID.match(item["model_config_id"])
    assert item["inputs"] == {"person": "Ada Lovelace", "year": 1815}
    rendered = [("system", "You are Ada Lovelace, born in 1815."), ("user", "What is your name?")]
    assert roles_and_contents(item["messages"]) == rendered
    assert item["output_message"] == {
        **item["output_message"],
        "role": "assistant",
        "content": item["output"],
    }
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["generation_tokens"] > 0
    assert body["provider_request"]["temperature"] == 0.3
    assert body["session_id"] is None

    log = stored(client, item["id"])
    assert (log["project_id"], log["config_id"]) == (body["project_id"], item["model_config_id"])
    assert log["output"] == item["output"]
    assert log["inputs"] == item["inputs"]
    assert roles_and_contents(log["messages"]) == rendered
    assert log["project"].startswith("e2e-ts-template-")


def test_stream_yields_the_plain_answer_chunk_by_chunk(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "stream")
    (plain,) = got["plain"]["data"]
    chunks = got["chunks"]
    expected = MOCK_REPLY + "tell me about streams"
    assert got["status"] == 200
    assert plain["output"] == expected

    # the mock streams one event per word, then one that closes the sample: none may be lost
    assert len(chunks) == len(expected.split(" ")) + 1
    assert joined(chunks) == plain["output"]
    assert [chunk["finish_reason"] for chunk in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert {chunk["index"] for chunk in chunks} == {0}
    assert {chunk["model_config_id"] for chunk in chunks} == {plain["model_config_id"]}
    assert {chunk["project_id"] for chunk in chunks} == {got["plain"]["project_id"]}
    (stream_id,) = {chunk["id"] for chunk in chunks}
    assert LOG_ID.match(stream_id)
    assert stream_id != plain["id"]
    last = chunks[-1]
    assert last["output_message"]["role"] == "assistant"
    assert last["output_message"]["content"] == expected
    assert last["tool_results"] == []

    # the id the stream handed out is the log the SDK lists afterwards, holding the whole text
    listed = {record["id"]: record for record in got["listed"]["records"]}
    assert set(listed) == {plain["id"], stream_id}
    assert listed[stream_id]["output"] == expected
    log = stored(client, stream_id)
    assert (log["output"], log["finish_reason"]) == (expected, "stop")
    assert log["inputs"] == {"who": "a pirate"}


def test_stream_of_non_ascii_text_arrives_intact(ts: dict[str, Any], client: httpx.Client) -> None:
    """The SDK decodes every network read on its own: loopgate sends events as ASCII so that no character
    can be split (a ~120 KB event of CJK and emoji, read in several pieces)."""
    got = result(ts, "stream_unicode")
    expected = MOCK_REPLY + got["text"]
    assert got["plain"]["data"][0]["output"] == expected
    text = joined(got["chunks"])
    assert "\ufffd" not in text
    assert text == expected
    assert got["chunks"][-1]["output_message"]["content"] == expected
    assert stored(client, got["chunks"][0]["id"])["output"] == expected


def test_two_samples_streamed_and_plain(ts: dict[str, Any]) -> None:
    got = result(ts, "stream_samples")
    by_index: dict[int, list[dict[str, Any]]] = {}
    for chunk in got["chunks"]:
        by_index.setdefault(chunk["index"], []).append(chunk)
    assert sorted(by_index) == [0, 1]
    texts = {}
    for index, sample in by_index.items():
        assert len({chunk["id"] for chunk in sample}) == 1, f"sample {index} changed id mid-stream"
        assert [chunk["finish_reason"] for chunk in sample][-1] == "stop"
        assert sum(chunk["finish_reason"] is not None for chunk in sample) == 1
        texts[index] = joined(sample)
    assert by_index[0][0]["id"] != by_index[1][0]["id"]
    assert texts == {0: MOCK_REPLY + "two please", 1: MOCK_REPLY + "two please (sample 2)"}
    plain = got["plain"]
    assert [item["output"] for item in plain["data"]] == [texts[0], texts[1]]


def test_sessions_by_reference_id_and_parents(ts: dict[str, Any], client: httpx.Client) -> None:
    got = result(ts, "sessions")
    first, second, other, by_id, child = (got[k] for k in ("first", "second", "other", "by_id", "child"))
    assert SESSION_ID.match(first["session_id"])
    assert second["session_id"] == by_id["session_id"] == child["session_id"] == first["session_id"]
    assert SESSION_ID.match(other["session_id"])
    assert other["session_id"] != first["session_id"]
    (streamed_child,) = {chunk["id"] for chunk in got["streamed_child"]}

    response = client.get(f"/sessions/{first['session_id']}")
    assert response.status_code == 200, response.text
    tree = {log["id"]: log["parent_id"] for log in response.json()["datapoints"]}
    assert tree == {
        first["id"]: None,
        second["id"]: None,
        by_id["id"]: None,
        child["id"]: first["id"],
        streamed_child: first["id"],
    }
    assert stored(client, streamed_child)["output"] == MOCK_REPLY + "streamed child"


def test_tool_call_plain_and_streamed(ts: dict[str, Any]) -> None:
    got = result(ts, "tools")
    (item,) = got["plain"]["data"]
    assert item["finish_reason"] == "tool_call"
    (call,) = item["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "mock"}
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}
    assert item["output_message"]["tool_calls"] == [call]
    # streamed, the call comes whole on the final chunk (its empty output still passes the SDK's filter)
    last = got["chunks"][-1]
    assert (last["output"], last["finish_reason"]) == ("", "tool_call")
    assert [c["function"] for c in last["tool_calls"]] == [call["function"]]
    assert last["output_message"]["tool_calls"] == last["tool_calls"]


@pytest.mark.parametrize(
    ("case", "status", "loc"),
    [
        ("missing_variable", 422, ["body", "inputs", "customer"]),
        ("project_and_project_id", 422, ["body", "project_id"]),
    ],
)
def test_invalid_requests_are_422_in_fastapi_shape(
    ts: dict[str, Any], case: str, status: int, loc: list[str]
) -> None:
    error = result(ts, "errors")[case]
    assert (error["exception"], error["status"]) == ("HumanloopError", status)
    (detail,) = error["body"]["detail"]
    assert set(detail) == {"loc", "msg", "type"}
    assert detail["loc"] == loc


@pytest.mark.parametrize(
    ("case", "status", "mentions"),
    [
        ("unknown_project_id", 404, "pr_doesnotexist0000000000"),
        ("unknown_session_id", 404, "sesh_doesnotexist000000000"),
        ("unknown_parent_id", 404, "data_doesnotexist000000000"),
        ("wrong_api_key", 401, "API key"),
    ],
)
def test_other_errors_carry_a_string_detail(
    ts: dict[str, Any], case: str, status: int, mentions: str
) -> None:
    error = result(ts, "errors")[case]
    assert error["status"] == status
    assert mentions in error["body"]["detail"]


def test_provider_errors_keep_their_status_plain_and_streamed(ts: dict[str, Any]) -> None:
    plain = result(ts, "errors")["provider_429"]
    streamed = result(ts, "stream_error")
    for error, status, kind in (
        (plain, 429, "rate_limit_error"),
        (streamed, 503, "service_unavailable_error"),
    ):
        assert error["status"] == status
        # the SDK reads a failed stream's body back and parses it, as for a plain call
        assert error["body"]["detail"] == {
            **error["body"]["detail"],
            "code": status,
            "type": kind,
            "origin": "Mock",
        }


def test_a_base_path_with_a_trailing_slash_works(ts: dict[str, Any]) -> None:
    got = result(ts, "trailing_slash")
    expected = MOCK_REPLY + "a slash too many"
    assert got["plain"]["data"][0]["output"] == joined(got["chunks"]) == expected
    assert got["project"]["id"] == got["plain"]["project_id"]


def test_the_readme_example_runs(server: Server) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```js\n", 1)[1].split("```", 1)[0]
    source = example.replace('"lg_..."', json.dumps(server.api_key))
    source = source.replace('"http://127.0.0.1:8000/v4"', json.dumps(server.url))
    assert source != example
    output, log_id = run_ts_source(source).split("\n")[0].rsplit(" ", 1)
    assert output == MOCK_REPLY + "Where is the treasure?"
    assert LOG_ID.match(log_id)
