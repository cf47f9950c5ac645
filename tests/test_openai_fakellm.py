"""The OpenAI adapter end to end: a real ``loopgate serve`` calling fakellm 0.3.5 (PyPI) over loopback, an
OpenAI-shaped server nobody on this team wrote, driven by the rules in ``tests/fakellm.yaml``.

fakellm cannot express everything a real upstream does: ``test_openai_own_upstream.py`` runs the same
adapter against a scripted upstream of our own for the rest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from loopgate import tokens

from .conftest import Server, fakellm_process
from .helpers import WEATHER_TOOL
from .openai_e2e import (
    SECRET_KEY,
    assert_provider_error,
    by_index,
    chat_body,
    loopgates,
    payload,
    project_logs,
    sse_events,
    unique,
)

pytestmark = pytest.mark.e2e


STREAM_TEXT = (
    "The quick brown fox jumps over the lazy dog."  # the `stream` rule; fakellm sends one word a chunk
)
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}


def fingerprint(body: dict[str, Any]) -> str:
    """fakellm's deterministic echo: a hash of the exact request body it received."""
    serialized = json.dumps(body, sort_keys=True, default=str).encode()
    return f"[mock response for {body['model']}, fingerprint {hashlib.sha256(serialized).hexdigest()[:8]}]"


# -- fakellm --------------------------------------------------------------------------------------------


@dataclass
class FakeLLM:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.url}/_fakellm/stats", timeout=5).json()
        return stats

    def calls(self, rule: str) -> int:
        """Requests fakellm has matched to ``rule`` so far (its own count: proof a call reached it)."""
        count: int = self.stats()["by_rule"].get(rule, 0)
        return count

    def total(self) -> int:
        total: int = self.stats()["total_requests"]
        return total


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLLM]:
    with fakellm_process(tmp_path_factory.mktemp("fakellm")) as (port, process):
        yield FakeLLM(port, process)


@pytest.fixture(scope="module")
def fakellm_servers(
    tmp_path_factory: pytest.TempPathFactory, fakellm: FakeLLM
) -> Iterator[dict[str, Server]]:
    """loopgate -> fakellm, with no server-side OpenAI key (every request brings its own)."""
    names = ["main", "top-up", "top-up-stream"]
    with loopgates(tmp_path_factory, f"{fakellm.url}/v1", names) as servers:
        yield servers


@pytest.fixture(scope="module")
def server(fakellm_servers: dict[str, Server]) -> Server:
    return fakellm_servers["main"]


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


# -- plain chat -----------------------------------------------------------------------------------------


def test_plain_chat(client: httpx.Client, server: Server, fakellm: FakeLLM) -> None:
    project = unique("fk-plain")
    before = fakellm.calls("plain")
    response = client.post("/chat", json=chat_body(project, "fk-plain: say bonjour"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert fakellm.calls("plain") == before + 1

    [item] = body["data"]
    raw = "  Bonjour from fakellm: plain and simple.  "
    assert item["index"] == 0
    assert item["raw_output"] == raw
    assert item["output"] == raw.strip()
    assert item["finish_reason"] == "stop"
    assert item["output_message"]["role"] == "assistant"
    assert item["output_message"]["content"] == raw
    assert item["tool_calls"] is None

    # The exact body sent upstream, and fakellm's own response body.
    assert body["provider_request"] == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "fk-plain: say bonjour"}],
        "stream": False,
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    [upstream] = body["provider_responses"]
    assert upstream["id"].startswith("chatcmpl-")
    assert upstream["object"] == "chat.completion"
    assert upstream["model"] == "gpt-4o"
    assert upstream["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": raw}, "finish_reason": "stop"}
    ]
    # fakellm reports usage on plain calls: it is passed through, renamed to v4's generation_tokens.
    assert body["usage"] == {
        "prompt_tokens": upstream["usage"]["prompt_tokens"],
        "generation_tokens": upstream["usage"]["completion_tokens"],
        "total_tokens": upstream["usage"]["total_tokens"],
    }
    assert body["usage"]["generation_tokens"] > 0

    [log] = project_logs(server.database, project)
    assert log["id"] == item["id"]
    assert (log["status"], log["output"], log["finish_reason"]) == ("complete", raw.strip(), "stop")
    assert log["prompt_tokens"] == upstream["usage"]["prompt_tokens"]
    assert log["output_tokens"] == upstream["usage"]["completion_tokens"]
    stored = payload(server.database, log)
    assert stored["provider_request"] == body["provider_request"]
    assert stored["provider_responses"] == body["provider_responses"]


def test_provider_request_is_exactly_what_fakellm_received(client: httpx.Client) -> None:
    """An unmatched request is answered with a hash of the body fakellm parsed: it must hash to ours."""
    body = chat_body(
        unique("fk-echo"),
        "no rule matches this one",
        model_config={"temperature": 0.3, "max_tokens": 50, "stop": ["\n\n"], "other": {"logit_bias": {}}},
        user="alice",
        seed=7,
    )
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    sent = response.json()["provider_request"]
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 50
    assert sent["stop"] == ["\n\n"]
    assert sent["user"] == "alice"
    assert sent["seed"] == 7
    assert sent["logit_bias"] == {}
    assert response.json()["data"][0]["raw_output"] == fingerprint(sent)


# -- streams --------------------------------------------------------------------------------------------


def test_streamed_chat(client: httpx.Client, server: Server, fakellm: FakeLLM) -> None:
    project = unique("fk-stream")
    before = fakellm.calls("stream")
    events = sse_events(client.post("/chat", json=chat_body(project, "fk-stream please", stream=True)))
    assert fakellm.calls("stream") == before + 1

    *chunks, final = events
    words = STREAM_TEXT.split(" ")
    assert len(chunks) == len(words)  # one event per upstream content chunk
    log_id = final["data"][0]["id"]
    for chunk in chunks:
        [item] = chunk["data"]
        assert (item["id"], item["index"], item["finish_reason"]) == (log_id, 0, None)
        assert chunk["project_id"] == final["project_id"]
    assert "".join(chunk["data"][0]["output"] for chunk in chunks) == STREAM_TEXT

    [item] = final["data"]
    assert item["finish_reason"] == "stop"
    assert item["output_message"]["content"] == STREAM_TEXT
    # fakellm sends no usage in streams: loopgate counts the tokens itself.
    expected_prompt = tokens.count_messages([{"role": "user", "content": "fk-stream please"}])
    expected_output = tokens.count_output(STREAM_TEXT, None)
    assert final["usage"] == {
        "prompt_tokens": expected_prompt,
        "generation_tokens": expected_output,
        "total_tokens": expected_prompt + expected_output,
    }
    assert expected_output > 0

    [log] = project_logs(server.database, project)
    assert log["id"] == log_id
    assert (log["status"], log["output"], log["finish_reason"]) == ("complete", STREAM_TEXT, "stop")
    assert (log["prompt_tokens"], log["output_tokens"]) == (expected_prompt, expected_output)
    stored = payload(server.database, log)
    assert stored["provider_request"]["stream"] is True
    assert stored["provider_request"]["n"] == 1
    [assembled] = stored["provider_responses"]
    assert assembled["id"].startswith("chatcmpl-")
    assert assembled["choices"][0]["message"]["content"] == STREAM_TEXT
    assert assembled["choices"][0]["finish_reason"] == "stop"
    assert assembled["usage"] is None
    assert assembled["stream_chunks"] == len(words) + 2  # role chunk + words + finish chunk


def test_streamed_provider_request_is_exactly_what_fakellm_received(
    client: httpx.Client, server: Server
) -> None:
    project = unique("fk-echo-stream")
    events = sse_events(client.post("/chat", json=chat_body(project, "unmatched, streamed", stream=True)))
    text = "".join(event["data"][0]["output"] for event in events)
    [log] = project_logs(server.database, project)
    sent = payload(server.database, log)["provider_request"]
    assert sent["stream"] is True
    assert text == fingerprint(sent)
    assert log["output"] == text


# -- tool calls -----------------------------------------------------------------------------------------


def test_tool_call(client: httpx.Client, server: Server) -> None:
    project = unique("fk-tool")
    body = chat_body(project, "What is the weather in Paris?", model_config={"tools": [WEATHER_TOOL]})
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    sent = result["provider_request"]
    assert sent["tools"] == [{"type": "function", "function": WEATHER_TOOL}]
    assert sent["tool_choice"] == "auto"

    [item] = result["data"]
    assert item["finish_reason"] == "tool_call"
    [call] = item["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert item["output_message"]["tool_calls"] == item["tool_calls"]
    assert item["output_message"]["content"] is None
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}

    [log] = project_logs(server.database, project)
    assert (log["status"], log["finish_reason"]) == ("complete", "tool_call")
    assert payload(server.database, log)["output_message"]["tool_calls"] == item["tool_calls"]


def test_streamed_tool_call(client: httpx.Client, server: Server) -> None:
    project = unique("fk-tool-stream")
    body = chat_body(project, "Weather in Paris?", model_config={"tools": [WEATHER_TOOL]}, stream=True)
    *chunks, final = sse_events(client.post("/chat", json=body))
    assert all(chunk["data"][0]["finish_reason"] is None for chunk in chunks)

    [item] = final["data"]
    assert item["finish_reason"] == "tool_call"
    [call] = item["tool_calls"]  # fakellm streams the arguments in four pieces: they are reassembled
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert item["output_message"]["tool_calls"] == item["tool_calls"]
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}

    [log] = project_logs(server.database, project)
    assert (log["id"], log["status"], log["finish_reason"]) == (item["id"], "complete", "tool_call")
    stored = payload(server.database, log)
    assert stored["output_message"]["tool_calls"] == item["tool_calls"]
    assert stored["provider_responses"][0]["choices"][0]["message"]["tool_calls"] == item["tool_calls"]


# -- faults ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "status", "error_type", "message"),
    [
        ("fk-fault-429", 429, "rate_limit_error", "Rate limit reached for gpt-4o (fakellm)"),
        (
            "fk-fault-500",
            500,
            "internal_server_error",
            "The server had an error while processing your request (fakellm)",
        ),
    ],
)
def test_upstream_fault_is_mapped_and_logged(
    client: httpx.Client,
    server: Server,
    fakellm: FakeLLM,
    marker: str,
    status: int,
    error_type: str,
    message: str,
) -> None:
    project = unique(marker)
    rule = marker.removeprefix("fk-").replace("-", "_")
    before = fakellm.calls(rule)
    response = client.post("/chat", json=chat_body(project, f"{marker} now"))
    assert fakellm.calls(rule) == before + 1
    assert_provider_error(response, status, error_type, message)

    [log] = project_logs(server.database, project)
    assert log["status"] == "error"
    assert log["error"] == f"OpenAI: {message}"
    assert log["output"] is None
    assert log["finish_reason"] is None


# -- num_samples against an upstream that ignores n -----------------------------------------------------


def test_num_samples_topped_up_when_n_ignored(fakellm_servers: dict[str, Server], fakellm: FakeLLM) -> None:
    fresh_server = fakellm_servers["top-up"]
    with fresh_server.client() as client:
        # First request: n=2 is asked for, fakellm answers one choice, one more call fills the gap.
        project = unique("fk-samples")
        before = fakellm.calls("samples")
        response = client.post("/chat", json=chat_body(project, "fk-samples first", num_samples=2))
        assert response.status_code == 200, response.text
        body = response.json()
        assert fakellm.calls("samples") == before + 2
        assert body["num_samples"] == 2
        assert [item["index"] for item in body["data"]] == [0, 1]
        assert len({item["id"] for item in body["data"]}) == 2
        assert all(item["raw_output"] == "One sample of several." for item in body["data"])
        assert all(item["finish_reason"] == "stop" for item in body["data"])
        assert body["provider_request"]["n"] == 2
        assert len(body["provider_responses"]) == 2
        usages = [r["usage"] for r in body["provider_responses"]]
        assert body["usage"]["prompt_tokens"] == usages[0]["prompt_tokens"]
        assert body["usage"]["generation_tokens"] == sum(u["completion_tokens"] for u in usages)
        logs = project_logs(fresh_server.database, project)
        assert [(log["sample_index"], log["status"]) for log in logs] == [(0, "complete"), (1, "complete")]
        assert {log["id"] for log in logs} == {item["id"] for item in body["data"]}

        # Second request: the upstream is known to be single-choice, so two n=1 calls go out at once.
        before = fakellm.calls("samples")
        response = client.post("/chat", json=chat_body(project, "fk-samples again", num_samples=2))
        assert response.status_code == 200, response.text
        body = response.json()
        assert fakellm.calls("samples") == before + 2
        assert body["provider_request"]["n"] == 1
        assert [item["index"] for item in body["data"]] == [0, 1]
        assert len(project_logs(fresh_server.database, project)) == 4


def _assert_two_streamed_samples(events: list[dict[str, Any]], text: str) -> list[str]:
    grouped = by_index(events)
    assert sorted(grouped) == [0, 1]
    ids = []
    for index in (0, 1):
        *chunks, final = grouped[index]
        assert "".join(chunk["data"][0]["output"] for chunk in chunks) == text
        assert all(chunk["data"][0]["finish_reason"] is None for chunk in chunks)
        assert final["data"][0]["finish_reason"] == "stop"
        assert final["data"][0]["output_message"]["content"] == text
        assert {event["data"][0]["id"] for event in grouped[index]} == {final["data"][0]["id"]}
        ids.append(final["data"][0]["id"])
    assert ids[0] != ids[1]
    return ids


def test_streamed_num_samples_topped_up_when_n_ignored(
    fakellm_servers: dict[str, Server], fakellm: FakeLLM
) -> None:
    fresh_server = fakellm_servers["top-up-stream"]
    text = "One sample of several."
    with fresh_server.client() as client:
        project = unique("fk-samples-stream")
        before = fakellm.calls("samples")
        body = chat_body(project, "fk-samples streamed", num_samples=2, stream=True)
        ids = _assert_two_streamed_samples(sse_events(client.post("/chat", json=body)), text)
        assert fakellm.calls("samples") == before + 2
        logs = project_logs(fresh_server.database, project)
        assert [(log["id"], log["sample_index"]) for log in logs] == [(ids[0], 0), (ids[1], 1)]
        assert all((log["status"], log["output"]) == ("complete", text) for log in logs)
        stored = payload(fresh_server.database, logs[0])
        assert stored["provider_request"]["n"] == 2
        assert len(stored["provider_responses"]) == 2

        # Known single-choice now: two concurrent n=1 streams, merged.
        before = fakellm.calls("samples")
        project = unique("fk-samples-stream")
        body = chat_body(project, "fk-samples streamed again", num_samples=2, stream=True)
        _assert_two_streamed_samples(sse_events(client.post("/chat", json=body)), text)
        assert fakellm.calls("samples") == before + 2
        logs = project_logs(fresh_server.database, project)
        assert payload(fresh_server.database, logs[0])["provider_request"]["n"] == 1


# -- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_missing_key_is_400_naming_both_sources(client: httpx.Client, fakellm: FakeLLM, stream: bool) -> None:
    before = fakellm.total()
    response = client.post("/chat", json=chat_body(unique("fk-nokey"), "fk-plain", key=None, stream=stream))
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert (detail["type"], detail["code"], detail["origin"]) == ("bad_request_error", 400, "OpenAI")
    assert "provider_api_keys.openai" in detail["message"]
    assert "LOOPGATE_OPENAI_API_KEY" in detail["message"]
    assert fakellm.total() == before  # nothing was sent upstream


def test_provider_key_never_stored(client: httpx.Client, server: Server) -> None:
    key = f"sk-never-stored-{uuid.uuid4().hex}"
    project = unique("fk-secret")
    tool = {"tools": [WEATHER_TOOL]}
    requests = [
        chat_body(project, "fk-secret plain", key=key),
        chat_body(project, "fk-secret streamed", key=key, stream=True),
        chat_body(project, "fk-secret tools", key=key, model_config=tool),
        chat_body(project, "fk-secret samples", key=key, num_samples=2, stream=True),
        chat_body(project, "fk-fault-429 fk-secret", key=key),
        chat_body(project, "fk-fault-500 fk-secret", key=key, stream=True),  # fakellm streams an echo
    ]
    for body in requests:
        response = client.post("/chat", json=body)
        assert response.status_code in (200, 429), response.text
        assert key not in response.text
    assert len(project_logs(server.database, project)) == 7

    files = sorted(server.database.parent.glob(server.database.name + "*"))
    assert server.database in files
    assert server.database.with_name(server.database.name + "-wal") in files
    contents = b"".join(path.read_bytes() for path in files)
    assert project.encode() in contents  # the search does see what was written
    assert SECRET_KEY.encode() not in contents
    assert key.encode() not in contents
    assert server.log_path is not None
    assert key.encode() not in server.log_path.read_bytes()


def test_an_evaluation_uses_the_requests_key_and_never_stores_it(
    client: httpx.Client, server: Server, fakellm: FakeLLM
) -> None:
    """A generated evaluation (hl_generated left to its default) calls the upstream with the creating
    request's ``provider_api_keys`` -- for each datapoint's generation and for the llm evaluator -- and the
    key is in neither the database nor the server's log. This server has no OpenAI key of its own, so a call
    without the request's key would be refused before reaching fakellm."""
    key = f"sk-evaluation-{uuid.uuid4().hex}"
    openai = {"provider": "openai", "model": "gpt-4o"}
    template = [{"role": "user", "content": "fk-plain: {{q}}"}]
    registered = client.post(
        "/model-configs", json={**openai, "project": unique("fk-eval"), "chat_template": template}
    )
    project_id, config_id = registered.json()["project_id"], registered.json()["config"]["id"]
    dataset = client.post(f"/projects/{project_id}/datasets", json={"name": "d", "description": ""}).json()
    points = [{"inputs": {"q": "one"}}, {"inputs": {"q": "two"}}]
    assert client.post(f"/datasets/{dataset['id']}/datapoints", json=points).status_code == 201
    judge = {
        "name": "judge",
        "description": "",
        "arguments_type": "target_free",
        "return_type": "text",
        "type": "llm",
        "model_config": {**openai, "prompt_template": "fk-plain judge {{log.output}}"},
    }
    evaluator_id = client.post("/evaluators", json=judge).json()["id"]
    before = fakellm.calls("plain")
    body = {
        "config_id": config_id,
        "dataset_id": dataset["id"],
        "evaluator_ids": [evaluator_id],
        "provider_api_keys": {"openai": key},
    }
    created = client.post(f"/projects/{project_id}/evaluations", json=body)
    assert created.status_code == 201, created.text
    assert key not in created.text
    deadline = time.monotonic() + 30
    while client.get(f"/evaluations/{created.json()['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    records = client.get(f"/evaluations/{created.json()['id']}/datapoints").json()["records"]
    assert [record["log"]["output"] for record in records] == ["Bonjour from fakellm: plain and simple."] * 2
    results = [result for record in records for result in record["evaluation_results"]]
    assert [(result["value"], result["error"]) for result in results] == [
        ("  Bonjour from fakellm: plain and simple.  ", None)
    ] * 2
    assert fakellm.calls("plain") == before + 4  # two generations, two judgments

    files = sorted(server.database.parent.glob(server.database.name + "*"))
    assert key.encode() not in b"".join(path.read_bytes() for path in files)
    assert server.log_path is not None and key.encode() not in server.log_path.read_bytes()
