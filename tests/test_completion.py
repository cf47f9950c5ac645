"""The completion endpoints over HTTP (``/completion``, ``/completion-deployed``,
``/completion-model-config``): the rendered prompt goes to chat-only models as one user message, the
answer is CompletionResponse-shaped (plain and streamed), every sample is logged, and ``logprobs`` /
``suffix`` are echoed (``logprobs`` forwarded in the chat API's form)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Server, make_server
from tests.helpers import db_rows, log_row, sse_events, unique

MOCK_COMPLETION = {"provider": "mock", "model": "mock-1", "prompt_template": "Write about {{topic}}."}
RESPONSE_KEYS = {
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
}
DATA_KEYS = {
    "id",
    "index",
    "output",
    "raw_output",
    "inputs",
    "finish_reason",
    "model_config_id",
    "tool_results",
}


def completion_body(project: str, **extra: Any) -> dict[str, Any]:
    return {"project": project, "model_config": dict(MOCK_COMPLETION), "inputs": {"topic": "owls"}, **extra}


def test_completion_renders_the_prompt_as_one_user_message(client: httpx.Client, server: Server) -> None:
    body = completion_body(unique("comp"), logprobs=2, suffix="THE END", user="u-9", metadata={"k": 1})
    response = client.post("/completion", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert set(payload) == RESPONSE_KEYS  # no tool_choice on a CompletionResponse
    (item,) = payload["data"]
    assert set(item) == DATA_KEYS
    assert item["output"] == "This is a mock response to: Write about owls."
    assert (
        item["inputs"] == {"topic": "owls"} and item["finish_reason"] == "stop" and item["tool_results"] == []
    )
    assert payload["logprobs"] == 2 and payload["suffix"] == "THE END"
    assert payload["user"] == "u-9" and payload["metadata"] == {"k": 1}
    assert payload["provider_request"]["messages"] == [{"role": "user", "content": "Write about owls."}]
    assert payload["usage"]["total_tokens"] > 0
    row = log_row(server.database, item["id"])
    assert row is not None and row["output"] == item["output"] and row["project_id"] == payload["project_id"]
    (config,) = db_rows(
        server.database, "SELECT body FROM model_configs WHERE id = ?", item["model_config_id"]
    )
    stored = orjson.loads(config["body"])
    assert (
        stored["endpoint"] == "complete" and stored["prompt_template"] == MOCK_COMPLETION["prompt_template"]
    )


def test_completion_versions_samples_and_flags(client: httpx.Client, server: Server) -> None:
    project = unique("comp-n")
    first = client.post("/completion", json=completion_body(project)).json()
    again = client.post("/completion", json=completion_body(project, inputs={"topic": "cats"})).json()
    chat = client.post(
        "/chat",
        json={"project": project, "model_config": {"provider": "mock", "model": "mock-1"}, "messages": []},
    ).json()
    config_id = first["data"][0]["model_config_id"]
    assert again["data"][0]["model_config_id"] == config_id  # same parameters, same version
    assert chat["data"][0]["model_config_id"] != config_id  # a chat config is another version

    samples = client.post(
        "/completion", json=completion_body(project, num_samples=3, return_inputs=False)
    ).json()
    assert [item["index"] for item in samples["data"]] == [0, 1, 2]
    assert len({item["id"] for item in samples["data"]}) == 3
    assert all(item["inputs"] == {} for item in samples["data"])
    for item in samples["data"]:
        assert log_row(server.database, item["id"])["output"] == item["output"]

    unsaved = client.post("/completion", json=completion_body(project, save=False)).json()
    row = log_row(server.database, unsaved["data"][0]["id"])
    assert row is not None and row["output"] is None and row["payload"] is None


def test_completion_streams_completion_shaped_events(client: httpx.Client, server: Server) -> None:
    response = client.post(
        "/completion", json=completion_body(unique("comp-s"), stream=True, num_samples=2, suffix="s")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert len(events) > 4
    by_index: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for event in events:
        (item,) = event["data"]
        assert "output_message" not in item and "messages" not in item and "tool_choice" not in event
        by_index[item["index"]].append(item)
    for index, items in by_index.items():
        assert len({item["id"] for item in items}) == 1
        assert [item["finish_reason"] for item in items][-1] == "stop"
        assert all(item["finish_reason"] is None for item in items[:-1])
        text = "".join(item["output"] for item in items)
        expected = "This is a mock response to: Write about owls." + (" (sample 2)" if index else "")
        assert text == expected
        assert log_row(server.database, items[0]["id"])["output"] == expected
    final = events[-1]
    assert final["suffix"] == "s" and final["usage"]["total_tokens"] > 0
    assert final["data"][0]["inputs"] == {"topic": "owls"}


def test_completion_errors(client: httpx.Client) -> None:
    project = unique("comp-err")
    no_prompt = client.post(
        "/completion", json={**completion_body(project), "model_config": {"provider": "mock", "model": "m"}}
    )
    assert no_prompt.status_code == 422
    assert no_prompt.json()["detail"][0]["loc"] == ["body", "model_config", "prompt_template"]
    missing_input = client.post("/completion", json=completion_body(project, inputs={}))
    assert missing_input.status_code == 422
    assert missing_input.json()["detail"][0]["loc"] == ["body", "inputs", "topic"]
    chat_field = client.post("/completion", json=completion_body(project, messages=[]))
    assert chat_field.status_code == 422
    assert client.post("/completion", json=completion_body(project, logprobs=-1)).status_code == 422
    assert client.post("/completion", json={"project": project}).status_code == 422
    # nothing was created by the refused requests
    assert client.get("/projects", params={"filter": project}).json()["total"] == 0


def test_completion_deployed_and_by_config(client: httpx.Client, server: Server) -> None:
    project = unique("comp-dep")
    registered = client.post("/model-configs", json={**MOCK_COMPLETION, "project": project}).json()
    config_id = registered["config"]["id"]
    deployed = client.post("/completion-deployed", json={"project": project, "inputs": {"topic": "rain"}})
    assert deployed.status_code == 200, deployed.text
    item = deployed.json()["data"][0]
    assert item["model_config_id"] == config_id and item["output"].endswith("Write about rain.")
    assert log_row(server.database, item["id"])["environment"] == "production"

    stream = client.post(
        "/completion-deployed", json={"project": project, "inputs": {"topic": "rain"}, "stream": True}
    )
    assert sse_events(stream.text)[-1]["data"][0]["finish_reason"] == "stop"

    by_id = client.post(
        "/completion-model-config", json={"model_config_id": config_id, "inputs": {"topic": "sun"}}
    )
    assert by_id.status_code == 200
    assert by_id.json()["project_id"] == registered["project_id"]
    assert by_id.json()["data"][0]["output"].endswith("Write about sun.")
    assert log_row(server.database, by_id.json()["data"][0]["id"])["environment"] is None

    # a chat config has no prompt to complete
    chat_config = client.post(
        "/model-configs",
        json={
            "provider": "mock",
            "model": "mock-1",
            "project": unique(),
            "chat_template": [{"role": "user", "content": "x"}],
        },
    ).json()
    refused = client.post("/completion-model-config", json={"model_config_id": chat_config["config"]["id"]})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "model_config_id", "prompt_template"]
    refused = client.post("/completion-deployed", json={"project": chat_config["project_name"]})
    assert refused.status_code == 422
    assert client.post("/completion-deployed", json={"project": unique("none")}).status_code == 404
    missing = client.post("/completion-model-config", json={"model_config_id": "config_nope000000000000"})
    assert missing.status_code == 404


# -- logprobs reach an OpenAI-shaped upstream ------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(json.loads(self.rfile.read(length)))
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-test",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    server = make_server(
        tmp_path_factory.mktemp("openai-completion"),
        LOOPGATE_OPENAI_BASE_URL=f"http://127.0.0.1:{upstream.server_address[1]}/v1",
        LOOPGATE_OPENAI_API_KEY="sk-test",
    )
    server.start()
    yield server
    server.stop()
    upstream.shutdown()
    upstream.server_close()


def test_logprobs_are_forwarded_in_chat_form(openai_server: Server) -> None:
    config = {"provider": "openai", "model": "gpt-test", "prompt_template": "Say {{w}}"}
    body = {
        "project": unique("oa"),
        "model_config": config,
        "inputs": {"w": "hi"},
        "logprobs": 3,
        "suffix": "!",
    }
    with openai_server.client() as http:
        response = http.post("/completion", json=body)
    assert response.status_code == 200, response.text
    sent = _Recorder.bodies[-1]
    assert sent["messages"] == [{"role": "user", "content": "Say hi"}]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3
    assert "suffix" not in sent  # the chat API has no suffix; it is only echoed
    payload = response.json()
    assert payload["logprobs"] == 3 and payload["suffix"] == "!" and payload["data"][0]["output"] == "ok"
