"""Provider ``groq``: the OpenAI adapter pointed at groq's OpenAI-compatible API, key from the server only.

Driven end to end through a real ``loopgate serve`` against a loopback fake of groq's wire format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Server, make_server, serving
from .helpers import db_rows, sse_events, unique
from .loopback import Loopback, Reply, running, sse

pytestmark = pytest.mark.e2e

GROQ_KEY = "gsk_loopback_test_key"
MODEL = "llama-3.1-8b-instant"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[dict[str, Server]]:
    base = f"{upstream.url}/openai/v1"
    keyed = make_server(
        tmp_path_factory.mktemp("groq"), LOOPGATE_GROQ_BASE_URL=base, LOOPGATE_GROQ_API_KEY=GROQ_KEY
    )
    keyless = make_server(tmp_path_factory.mktemp("groq-nokey"), LOOPGATE_GROQ_BASE_URL=base)
    with serving(keyed, keyless):
        yield {"keyed": keyed, "keyless": keyless}


@pytest.fixture
def client(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with servers["keyed"].client() as http:
        yield http


def body(text: str, **extra: Any) -> dict[str, Any]:
    config = {"provider": "groq", "model": MODEL, **extra.pop("model_config", {})}
    return {
        "project": unique("groq"),
        "model_config": config,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def completion(text: str | None, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-groq1",
        "object": "chat.completion",
        "created": 1730000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, **message},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "queue_time": 0.01},
        "system_fingerprint": "fp_abc",
        "x_groq": {"id": "req_01"},
    }


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-groq2",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def test_plain(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=completion("Hello from groq")))
    response = client.post("/chat", json=body(f"hi {marker}"))
    assert response.status_code == 200, response.text
    result = response.json()
    [call] = upstream.calls(marker)
    assert call.path == "/openai/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {GROQ_KEY}"
    assert call.body == result["provider_request"]
    assert call.body["model"] == MODEL
    assert result["provider_responses"] == [completion("Hello from groq")]
    [item] = result["data"]
    assert (item["output"], item["finish_reason"]) == ("Hello from groq", "stop")
    assert result["usage"] == {"prompt_tokens": 12, "generation_tokens": 3, "total_tokens": 15}


def test_streamed(client: httpx.Client, servers: dict[str, Server], upstream: Loopback) -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    frames = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "One"}),
        chunk({"content": " two"}),
        chunk({"content": " three"}),
        chunk({}, "stop", x_groq={"id": "req_02", "usage": usage}),
        "[DONE]",
    )
    marker = upstream.script(Reply(frames=frames))
    request = body(f"count {marker}", stream=True)
    response = client.post("/chat", json=request)
    *chunks, final = sse_events(response.text)
    assert [c["data"][0]["output"] for c in chunks] == ["One", " two", " three"]
    assert final["data"][0]["finish_reason"] == "stop"
    assert final["data"][0]["output_message"]["content"] == "One two three"
    [call] = upstream.calls(marker)
    assert call.body["stream"] is True
    [log] = db_rows(servers["keyed"].database, "SELECT * FROM logs WHERE id = ?", final["data"][0]["id"])
    assert (log["status"], log["output"]) == ("complete", "One two three")


def test_tool_call(client: httpx.Client, upstream: Loopback) -> None:
    tool_call = {
        "id": "call_g1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    marker = upstream.script(Reply(body=completion(None, "tool_calls", tool_calls=[tool_call])))
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    response = client.post("/chat", json=body(f"weather {marker}", model_config={"tools": [tool]}))
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    assert item["finish_reason"] == "tool_call"
    assert item["tool_calls"] == [tool_call]
    [call] = upstream.calls(marker)
    assert call.body["tools"] == [{"type": "function", "function": tool}]


def test_json_mode(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=completion('{"ok": true}')))
    response = client.post("/chat", json=body(marker, response_format={"type": "json_object"}))
    assert response.status_code == 200, response.text
    assert upstream.calls(marker)[0].body["response_format"] == {"type": "json_object"}
    assert json.loads(response.json()["data"][0]["output"]) == {"ok": True}


def test_rate_limit_mapped(client: httpx.Client, upstream: Loopback) -> None:
    error = {"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}}
    # Retry-After beyond the retry policy's longest wait: no retry, the 429 goes straight to the client.
    marker = upstream.script(Reply(429, error, headers={"retry-after": "30"}))
    response = client.post("/chat", json=body(marker))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert len(upstream.calls(marker)) == 1
    assert response.json() == {
        "detail": {"type": "rate_limit_error", "message": "Rate limit reached", "code": 429, "origin": "Groq"}
    }


def test_missing_key_names_the_variable(servers: dict[str, Server], upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=completion("never")))
    request = body(marker, provider_api_keys={"openai": "sk-not-for-groq"})
    with servers["keyless"].client() as client:
        response = client.post("/chat", json=request)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert (detail["origin"], detail["code"]) == ("Groq", 400)
    assert "LOOPGATE_GROQ_API_KEY" in detail["message"]
    assert "no provider_api_keys.groq" in detail["message"]
    assert upstream.calls(marker) == []
