"""``POST /v4/chat`` driven by the official humanloop SDK 0.7.35, end to end.

The SDK lives in its own virtualenv (``make .venv-sdk/.installed``), so the scenarios in
``sdk_scenarios.py`` run as one subprocess with that interpreter against the session's ``loopgate serve``;
they record what the SDK handed back and these tests assert on it (and, where the promise is about
storage, on the server's database).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_scenarios
from tests.helpers import MOCK_REPLY, db_rows

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgresql")]

SCRIPT = Path(__file__).with_name("sdk_scenarios.py")
LOG_ID = re.compile(r"^data_[A-Za-z0-9]{21}$")
CONFIG_ID = re.compile(r"^(config|prv)_[A-Za-z0-9]+$")
SESSION_ID = re.compile(r"^sesh_[A-Za-z0-9]+$")


@pytest.fixture(scope="module")
def sdk(server: Server) -> dict[str, Any]:
    """Every scenario, run once in one SDK process (its import alone takes ~2 s)."""
    return run_scenarios(SCRIPT, server, "all")


def log_rows(server: Server, *log_ids: str) -> dict[str, dict[str, Any]]:
    """The stored ``logs`` rows with these ids, read straight from the server's database."""
    marks = ",".join("?" * len(log_ids))
    rows = db_rows(server.database, f"SELECT * FROM logs WHERE id IN ({marks})", *log_ids)  # noqa: S608
    return {row["id"]: dict(row) for row in rows}


def roles_and_contents(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in messages]


# -- a plain chat --------------------------------------------------------------------------------------


def test_chat_renders_the_template_and_answers_with_ids_usage_and_payloads(
    sdk: dict[str, Any], server: Server
) -> None:
    got = result(sdk, "chat_template")
    response, attributes = got["response"], got["attributes"]
    (item,) = response["data"]

    assert item["output"] == MOCK_REPLY + "What is your name?"
    assert item["raw_output"] == item["output"]
    assert item["index"] == 0
    assert item["finish_reason"] == "stop"
    assert LOG_ID.match(item["id"])
    assert CONFIG_ID.match(item["model_config_id"])
    assert response["project_id"].startswith("pr_")
    assert item["inputs"] == {"person": "Ada Lovelace", "year": 1815}
    assert item["output_message"]["role"] == "assistant"
    assert item["output_message"]["content"] == item["output"]

    # {{person}} and {{ year }} (spaces, non-string value) substituted; template first, then the request.
    rendered = [("system", "You are Ada Lovelace, born in 1815."), ("user", "What is your name?")]
    assert roles_and_contents(item["messages"]) == rendered

    # usage is v4-shaped (generation_tokens) and agrees with the provider's own counts
    usage = response["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["generation_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["generation_tokens"]

    # what went to the provider (rendered messages, config parameters) and what came back
    request = response["provider_request"]
    assert request["model"] == "mock-1"
    assert request["temperature"] == 0.3
    assert roles_and_contents(request["messages"]) == rendered
    (provider_response,) = response["provider_responses"]
    assert provider_response["choices"][0]["message"]["content"] == item["output"]
    assert provider_response["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert provider_response["usage"]["completion_tokens"] == usage["generation_tokens"]
    assert response["session_id"] is None

    # the SDK's own attribute names read the same values user code would get
    assert attributes["output"] == item["output"]
    assert attributes["id"] == item["id"]
    assert attributes["model_config_id"] == item["model_config_id"]
    assert attributes["project_id"] == response["project_id"]
    assert attributes["usage"] == usage
    assert attributes["output_message_content"] == item["output"]
    assert attributes["message_contents"] == [content for _, content in rendered]

    # the id handed out is a real, committed log of that project and config
    row = log_rows(server, item["id"])[item["id"]]
    assert row["status"] == "complete"
    assert row["output"] == item["output"]
    assert row["project_id"] == response["project_id"]
    assert row["config_id"] == item["model_config_id"]
    assert row["payload"] is not None


def test_model_config_is_reused_for_the_same_parameters_and_versioned_on_change(sdk: dict[str, Any]) -> None:
    ids = result(sdk, "config_versions")
    assert all(CONFIG_ID.match(value) for value in ids.values())
    assert ids["same_again"] == ids["first"]
    assert ids["renamed"] == ids["first"], "a name is a label, not a parameter"
    assert ids["temperature"] != ids["first"]
    assert ids["seed"] != ids["first"]
    assert ids["seed"] != ids["temperature"]
    assert ids["temperature_again"] == ids["temperature"]


# -- streaming -----------------------------------------------------------------------------------------


def test_stream_delivers_the_same_output_as_a_plain_chat(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "stream")
    plain = got["plain"]["data"][0]
    chunks = got["chunks"]
    expected = MOCK_REPLY + "tell me about streams"
    assert plain["output"] == expected

    # the mock streams one chunk per word, then one final chunk that closes the sample
    assert len(chunks) == len(expected.split(" ")) + 1
    assert "".join(chunk["output"] or "" for chunk in chunks) == plain["output"]
    ids = {chunk["id"] for chunk in chunks}
    assert len(ids) == 1
    (stream_id,) = ids
    assert LOG_ID.match(stream_id)
    assert stream_id != plain["id"]
    assert {chunk["index"] for chunk in chunks} == {0}
    assert [chunk["finish_reason"] for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)

    last = chunks[-1]
    assert last["finish_reason"] == "stop"
    assert last["output_message"]["role"] == "assistant"
    assert last["output_message"]["content"] == expected
    assert all(chunk["model_config_id"] == plain["model_config_id"] for chunk in chunks)
    assert all(chunk["project_id"] == got["plain"]["project_id"] for chunk in chunks)

    # after the stream, the log holds the whole text
    row = log_rows(server, stream_id)[stream_id]
    assert row["status"] == "complete"
    assert row["output"] == expected
    assert row["finish_reason"] == "stop"


def test_num_samples_two_streamed_and_plain(sdk: dict[str, Any]) -> None:
    got = result(sdk, "stream_samples")
    chunks = got["chunks"]
    by_index: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        by_index.setdefault(chunk["index"], []).append(chunk)
    assert sorted(by_index) == [0, 1]

    texts = {}
    for index, sample in by_index.items():
        assert len({chunk["id"] for chunk in sample}) == 1, f"sample {index} changed id mid-stream"
        assert sample[-1]["finish_reason"] == "stop", f"sample {index} never completed"
        assert sum(chunk["finish_reason"] is not None for chunk in sample) == 1
        texts[index] = "".join(chunk["output"] or "" for chunk in sample)
        assert sample[-1]["output_message"]["content"] == texts[index]
    assert by_index[0][0]["id"] != by_index[1][0]["id"]
    assert all(LOG_ID.match(sample[0]["id"]) for sample in by_index.values())
    assert texts == {0: MOCK_REPLY + "two please", 1: MOCK_REPLY + "two please (sample 2)"}

    plain = got["plain"]
    assert plain["num_samples"] == 2
    assert [item["index"] for item in plain["data"]] == [0, 1]
    assert len({item["id"] for item in plain["data"]}) == 2
    assert [item["output"] for item in plain["data"]] == [texts[0], texts[1]]


# -- sessions ------------------------------------------------------------------------------------------


def test_sessions_by_reference_id_and_parent_nesting(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "sessions")
    first, second, other, by_id, child = (got[key] for key in ("first", "second", "other", "by_id", "child"))
    assert SESSION_ID.match(first["session_id"])
    assert second["session_id"] == first["session_id"], "same session_reference_id must join the session"
    assert SESSION_ID.match(other["session_id"])
    assert other["session_id"] != first["session_id"]
    assert by_id["session_id"] == first["session_id"]
    assert child["session_id"] == first["session_id"], "a child joins its parent's session"

    rows = log_rows(server, *(entry["id"] for entry in got.values()))
    assert len(rows) == 5
    assert rows[child["id"]]["parent_id"] == first["id"]
    assert rows[child["id"]]["session_id"] == first["session_id"]
    assert rows[first["id"]]["parent_id"] is None
    assert rows[second["id"]]["session_id"] == first["session_id"]
    assert rows[other["id"]]["session_id"] == other["session_id"]


# -- save / return_inputs ------------------------------------------------------------------------------


def test_save_false_answers_fully_but_stores_no_content(sdk: dict[str, Any], server: Server) -> None:
    got = result(sdk, "save_false")
    (unsaved,) = got["unsaved"]["data"]
    (saved,) = got["saved"]["data"]
    assert LOG_ID.match(unsaved["id"])
    assert unsaved["output"] == MOCK_REPLY + "do not keep this secret"
    assert unsaved["inputs"] == {"topic": "secrets"}

    rows = log_rows(server, unsaved["id"], saved["id"])
    assert unsaved["id"] in rows, "save=false must still create the log (feedback targets it)"
    assert rows[unsaved["id"]]["output"] is None
    assert rows[unsaved["id"]]["payload"] is None
    assert rows[unsaved["id"]]["config_id"] == unsaved["model_config_id"]
    # control: the same query sees content when save is left at its default
    assert rows[saved["id"]]["output"] == MOCK_REPLY + "keep this"
    assert rows[saved["id"]]["payload"] is not None


def test_return_inputs_false_returns_empty_inputs(sdk: dict[str, Any]) -> None:
    (item,) = result(sdk, "save_false")["no_inputs"]["data"]
    assert item["inputs"] == {}
    # the inputs were still used to render the template
    assert roles_and_contents(item["messages"])[0] == ("system", "About hidden.")
    assert item["output"] == MOCK_REPLY + "no inputs back, please"


# -- tools ---------------------------------------------------------------------------------------------


def test_tool_call(sdk: dict[str, Any]) -> None:
    got = result(sdk, "tools")
    response, attributes = got["response"], got["attributes"]
    (item,) = response["data"]
    assert item["finish_reason"] == "tool_call"
    (call,) = item["tool_calls"]
    assert call["type"] == "function"
    assert call["id"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "mock"}
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}
    assert item["output_message"]["role"] == "assistant"
    assert item["output_message"]["tool_calls"] == [call]
    assert item["output"] == ""

    # the tool went to the provider in OpenAI's shape, with tool_choice defaulting to auto
    request = response["provider_request"]
    assert request["tools"][0]["function"]["name"] == "get_weather"
    assert request["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert request["tool_choice"] == "auto"

    assert attributes == {
        "finish_reason": "tool_call",
        "function_name": "get_weather",
        "arguments": call["function"]["arguments"],
        "tool_call_name": "get_weather",
        "output_message_tool_calls": 1,
    }


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "loc"),
    [
        ("missing_variable", ["body", "inputs", "customer"]),
        ("project_and_project_id", ["body", "project_id"]),
        ("session_id_and_reference", ["body", "session_reference_id"]),
    ],
)
def test_invalid_requests_are_422_in_fastapi_shape(sdk: dict[str, Any], case: str, loc: list[str]) -> None:
    error = result(sdk, "errors")[case]
    assert error["exception"] == "ApiException"
    assert error["status"] == 422
    detail = error["body"]["detail"]
    assert isinstance(detail, list)
    assert len(detail) == 1
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert detail[0]["loc"] == loc
    assert isinstance(detail[0]["msg"], str)
    assert detail[0]["msg"]
    if case == "missing_variable":
        assert "customer" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("case", "mentions"),
    [
        ("unknown_project_id", "pr_doesnotexist0000000000"),
        ("unknown_session_id", "sesh_doesnotexist000000000"),
        ("unknown_parent_id", "data_doesnotexist000000000"),
    ],
)
def test_unknown_ids_are_404(sdk: dict[str, Any], case: str, mentions: str) -> None:
    error = result(sdk, "errors")[case]
    assert error["status"] == 404
    assert isinstance(error["body"]["detail"], str)
    assert mentions in error["body"]["detail"]


def test_wrong_api_key_is_401_with_a_string_detail(sdk: dict[str, Any]) -> None:
    error = result(sdk, "errors")["wrong_api_key"]
    assert error["exception"] == "ApiException"
    assert error["status"] == 401
    assert isinstance(error["body"]["detail"], str)
    assert error["body"]["detail"]


def test_provider_error_keeps_its_status_and_describes_itself(sdk: dict[str, Any]) -> None:
    error = result(sdk, "errors")["provider_429"]
    assert error["exception"] == "ApiException"
    assert error["status"] == 429
    detail = error["body"]["detail"]
    assert set(detail) == {"type", "message", "code", "origin"}
    assert detail["type"] == "rate_limit_error"
    assert detail["code"] == 429
    assert detail["origin"] == "Mock"
    assert isinstance(detail["message"], str)
    assert detail["message"]


def test_provider_error_on_a_stream_is_an_http_status(sdk: dict[str, Any]) -> None:
    error = result(sdk, "stream_error")
    assert error["exception"] == "ApiStreamingException"
    assert error["status"] == 503
    assert error["body"]["detail"]["code"] == 503
    assert error["body"]["detail"]["type"] == "service_unavailable_error"
    assert error["body"]["detail"]["origin"] == "Mock"
