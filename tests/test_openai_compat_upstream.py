"""The OpenAI door in front of the ``openai`` provider and a declared upstream, against a scripted
OpenAI-shaped upstream on loopback (``tests/loopback.py``): what reaches the upstream (the per-request key,
parameters the door does not translate, ``max_completion_tokens`` as named) and what comes back (the
upstream's error object, status and ``Retry-After``; its logprobs).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server
from tests.helpers import db_rows, unique
from tests.loopback import Loopback, Reply, running, sse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def server(upstream: Loopback, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """loopgate with the scripted upstream as ``openai`` (no server key) and as the declared ``local``."""
    declared = {"local": {"base_url": f"{upstream.url}/local/v1", "api_key": "sk-declared-upstream"}}
    instance = make_server(
        tmp_path_factory.mktemp("door-upstream"),
        LOOPGATE_OPENAI_BASE_URL=f"{upstream.url}/v1",
        LOOPGATE_UPSTREAMS=json.dumps(declared),
        LOOPGATE_PROVIDER_MAX_RETRIES="0",
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def door(server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=f"{server.base}/v1", headers=headers, timeout=30) as http:
        yield http


def completion(text: str, *contents: str, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop", **choice}
            for i, c in enumerate((text, *contents))
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def body(marker: str, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": marker}], **extra}


def test_the_key_reaches_the_upstream_and_nothing_else(
    door: httpx.Client, server: Server, upstream: Loopback
) -> None:
    key = f"sk-door-{uuid.uuid4().hex}"
    marker = upstream.script(Reply(body=completion("fine")))
    project = unique("up-key")
    response = door.post(
        "/chat/completions",
        json=body(marker),
        headers={"X-Provider-Api-Key": key, "X-Loopgate-Project": project},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == "fine"
    assert answer["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
    }  # the upstream's
    (call,) = upstream.calls(marker)
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {key}"
    assert call.body["model"] == "gpt-4o"

    rows = db_rows(server.database, "SELECT * FROM logs WHERE id = ?", response.headers["x-loopgate-log-ids"])
    assert len(rows) == 1
    assert key.encode() not in server.database.read_bytes()
    assert key not in response.text


def test_untranslated_parameters_go_upstream_as_sent(door: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(
        Reply(body=completion("with logprobs", logprobs={"content": [{"token": "with"}]}))
    )
    sent = body(
        marker,
        max_completion_tokens=64,
        logprobs=True,
        top_logprobs=2,
        parallel_tool_calls=False,
        top_k=20,  # an extra_body field for a vLLM-style server
        metadata={"kept": "here"},
        stream_options=None,
    )
    response = door.post("/chat/completions", json=sent, headers={"X-Provider-Api-Key": "sk-x"})
    assert response.status_code == 200, response.text
    (call,) = upstream.calls(marker)
    for name in ("max_completion_tokens", "logprobs", "top_logprobs", "parallel_tool_calls", "top_k"):
        assert call.body[name] == sent[name], name
    assert "max_tokens" not in call.body  # OpenAI's reasoning models refuse it
    assert "metadata" not in call.body  # loopgate's: the log's metadata
    assert response.json()["choices"][0]["logprobs"] == {"content": [{"token": "with"}]}


def test_upstream_errors_keep_status_retry_after_and_openai_error_object(
    door: httpx.Client, upstream: Loopback
) -> None:
    error = {
        "message": "Rate limit reached for gpt-4o",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    marker = upstream.script(Reply(status=429, body={"error": error}, headers={"Retry-After": "7"}))
    for stream in (False, True):
        response = door.post(
            "/chat/completions", json=body(marker, stream=stream), headers={"X-Provider-Api-Key": "sk-x"}
        )
        assert response.status_code == 429, response.text
        assert response.headers["retry-after"] == "7"
        assert response.json() == {"error": error}


def test_a_stream_failing_midway_ends_with_an_error_event_and_an_error_log(
    door: httpx.Client, server: Server, upstream: Loopback
) -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}],
    }
    failure = {"error": {"message": "upstream broke", "type": "server_error", "param": None, "code": None}}
    marker = upstream.script(Reply(frames=sse(chunk, failure)))
    response = door.post(
        "/chat/completions", json=body(marker, stream=True), headers={"X-Provider-Api-Key": "sk-x"}
    )
    assert response.status_code == 200
    datas = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert datas[1]["choices"][0]["delta"] == {"content": "half"}
    assert datas[-1]["error"]["message"] == "upstream broke"
    assert "[DONE]" not in response.text
    (log_id,) = response.headers["x-loopgate-log-ids"].split(",")
    (row,) = db_rows(server.database, "SELECT status, output, error FROM logs WHERE id = ?", log_id)
    assert (row["status"], row["output"]) == ("error", "half")


def test_a_declared_upstream_by_its_prefix_with_its_own_key(door: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=completion("from local")))
    response = door.post(
        "/chat/completions",
        json={"model": "local/llama3", "messages": [{"role": "user", "content": marker}]},
        headers={"X-Provider-Api-Key": "sk-client-key-not-for-local"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "local/llama3"
    (call,) = upstream.calls(marker)
    assert call.path == "/local/v1/chat/completions"
    assert call.body["model"] == "llama3"
    assert call.headers["authorization"] == "Bearer sk-declared-upstream"  # never the client's key
    models = door.get("/models").json()["data"]
    assert [m["id"] for m in models] == ["mock/mock-1", "openai/*", "local/*"]
