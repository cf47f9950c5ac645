"""Provider ``google``: the Gemini adapter end to end through a real ``loopgate serve``, against a loopback
fake that speaks Gemini's documented wire format (``generateContent``, ``streamGenerateContent?alt=sse``
with CRLF-framed events, ``{"error": {code, message, status}}`` bodies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loopgate import tokens
from loopgate.store import content

from .conftest import Server, make_server, serving
from .helpers import db_rows, sse_events, unique
from .loopback import Loopback, Reply, running

pytestmark = pytest.mark.e2e

KEY = "AIza-loopback-test-key"
MODEL = "gemini-1.5-flash"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[dict[str, Server]]:
    keyed = make_server(
        tmp_path_factory.mktemp("google"),
        LOOPGATE_GOOGLE_BASE_URL=upstream.url,
        LOOPGATE_GOOGLE_API_KEY=KEY,
    )
    keyless = make_server(tmp_path_factory.mktemp("google-nokey"), LOOPGATE_GOOGLE_BASE_URL=upstream.url)
    with serving(keyed, keyless):
        yield {"keyed": keyed, "keyless": keyless}


@pytest.fixture
def server(servers: dict[str, Server]) -> Server:
    return servers["keyed"]


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def body(messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    config = {"provider": "google", "model": MODEL, **extra.pop("model_config", {})}
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"project": unique("google"), "model_config": config, "messages": messages, **extra}


def candidate(*parts: dict[str, Any], finish: str | None = "STOP", index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": index}
    if finish:
        found["finishReason"] = finish
        found["safetyRatings"] = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
    return found


def response(*candidates: dict[str, Any], usage: bool = True) -> dict[str, Any]:
    found: dict[str, Any] = {"candidates": list(candidates), "modelVersion": MODEL, "responseId": "resp-1"}
    if usage:
        found["usageMetadata"] = {"promptTokenCount": 11, "candidatesTokenCount": 4, "totalTokenCount": 15}
    return found


def frames(*chunks: dict[str, Any]) -> list[bytes]:
    """Gemini's SSE framing: ``data: <json>`` ended by CRLF CRLF."""
    return [b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in chunks]


def test_plain(client: httpx.Client, server: Server, upstream: Loopback) -> None:
    reply = response(candidate({"text": "Bonjour "}, {"text": "Paris"}))
    marker = upstream.script(Reply(body=reply))
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": f"Say hello {marker}"},
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "Again, to Paris"},
    ]
    config = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n"]}
    result = client.post("/chat", json=body(messages, model_config=config, seed=5))
    assert result.status_code == 200, result.text
    answer = result.json()
    [call] = upstream.calls(marker)
    assert call.path == f"/v1beta/models/{MODEL}:generateContent"
    assert call.headers["x-goog-api-key"] == KEY
    assert "authorization" not in call.headers
    assert call.body == {
        "contents": [
            {"role": "user", "parts": [{"text": f"Say hello {marker}"}]},
            {"role": "model", "parts": [{"text": "Salut"}]},
            {"role": "user", "parts": [{"text": "Again, to Paris"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Answer in French."}]},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 64,
            "stopSequences": ["\n\n"],
            "seed": 5,
        },
    }
    assert answer["provider_request"] == call.body
    assert answer["provider_responses"] == [reply]
    [item] = answer["data"]
    assert (item["raw_output"], item["finish_reason"]) == ("Bonjour Paris", "stop")
    assert item["output_message"] == {"role": "assistant", "content": "Bonjour Paris"} | {
        k: v for k, v in item["output_message"].items() if k not in ("role", "content")
    }
    assert answer["usage"] == {"prompt_tokens": 11, "generation_tokens": 4, "total_tokens": 15}
    [log] = db_rows(server.database, "SELECT * FROM logs WHERE id = ?", item["id"])
    assert (log["status"], log["output"], log["prompt_tokens"]) == ("complete", "Bonjour Paris", 11)


def test_streamed(client: httpx.Client, server: Server, upstream: Loopback) -> None:
    chunks = [
        {"candidates": [candidate({"text": "One"}, finish=None)], "modelVersion": MODEL, "responseId": "r2"},
        {"candidates": [candidate({"text": " two"}, finish=None)], "modelVersion": MODEL, "responseId": "r2"},
        {"candidates": [candidate({"text": " three"})], "modelVersion": MODEL, "responseId": "r2"},
    ]
    marker = upstream.script(Reply(frames=frames(*chunks)))
    events = sse_events(client.post("/chat", json=body(f"count {marker}", stream=True)).text)
    *deltas, final = events
    # One event per upstream chunk with text, then the final event (its text already went out).
    assert [event["data"][0]["output"] for event in deltas] == ["One", " two", " three"]
    assert final["data"][0]["output"] == ""
    assert final["data"][0]["finish_reason"] == "stop"
    assert final["data"][0]["output_message"]["content"] == "One two three"
    [call] = upstream.calls(marker)
    assert call.path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert call.headers["x-goog-api-key"] == KEY
    # No usageMetadata in this stream: loopgate counts the tokens itself.
    prompt = tokens.count_messages([{"role": "user", "content": f"count {marker}"}])
    output = tokens.count_output("One two three", None)
    assert final["usage"] == {
        "prompt_tokens": prompt,
        "generation_tokens": output,
        "total_tokens": prompt + output,
    }
    [log] = db_rows(server.database, "SELECT * FROM logs WHERE id = ?", final["data"][0]["id"])
    assert (log["status"], log["output"], log["output_tokens"]) == ("complete", "One two three", output)


def test_streamed_usage_and_assembly(client: httpx.Client, server: Server, upstream: Loopback) -> None:
    usage = {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9}
    chunks = [
        {"candidates": [candidate({"text": "Hi"}, finish=None)], "usageMetadata": {"promptTokenCount": 7}},
        {"candidates": [candidate({"text": " there"})], "usageMetadata": usage, "modelVersion": MODEL},
    ]
    marker = upstream.script(Reply(frames=frames(*chunks)))
    *_, final = sse_events(client.post("/chat", json=body(marker, stream=True)).text)
    assert final["usage"] == {"prompt_tokens": 7, "generation_tokens": 2, "total_tokens": 9}
    [log] = db_rows(server.database, "SELECT * FROM logs WHERE id = ?", final["data"][0]["id"])
    blobs = {row["hash"]: row["data"] for row in db_rows(server.database, "SELECT hash, data FROM blobs")}
    stored = content.expand(json.loads(log["payload"]), blobs)
    assert stored["provider_request"] == upstream.calls(marker)[0].body
    [assembled] = stored["provider_responses"]
    assert assembled == {
        "candidates": [
            {
                "index": 0,
                "content": {"role": "model", "parts": [{"text": "Hi there"}]},
                "finishReason": "STOP",
                "safetyRatings": chunks[1]["candidates"][0]["safetyRatings"],
            }
        ],
        "usageMetadata": usage,
        "modelVersion": MODEL,
        "stream_chunks": 2,
    }


def test_tool_call(client: httpx.Client, upstream: Loopback) -> None:
    reply = response(candidate({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}))
    marker = upstream.script(Reply(body=reply))
    result = client.post("/chat", json=body(f"weather? {marker}", model_config={"tools": [WEATHER]}))
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.body["tools"] == [{"functionDeclarations": [WEATHER]}]
    assert call.body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    [item] = result.json()["data"]
    assert item["finish_reason"] == "tool_call"
    [tool_call] = item["tool_calls"]
    assert tool_call["id"].startswith("call_")
    assert tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris"}


def test_tool_choice_and_tool_results(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=response(candidate({"text": "It is sunny."}))))
    messages = [
        {"role": "user", "content": f"weather in Paris and Rome {marker}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    request = body(
        messages,
        model_config={
            "tools": [WEATHER, {"name": "noop", "parameters": {"type": "object", "properties": {}}}]
        },
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    result = client.post("/chat", json=request)
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.body["tools"] == [{"functionDeclarations": [WEATHER, {"name": "noop"}]}]
    assert call.body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert call.body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "rain"}}},
            ],
        },
    ]
    assert result.json()["data"][0]["output"] == "It is sunny."


def test_streamed_tool_call(client: httpx.Client, upstream: Loopback) -> None:
    chunks = [
        {"candidates": [candidate({"text": "Checking. "}, finish=None)]},
        {"candidates": [candidate({"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}})]},
    ]
    marker = upstream.script(Reply(frames=frames(*chunks)))
    request = body(marker, model_config={"tools": [WEATHER]}, tool_choice="required", stream=True)
    *deltas, final = sse_events(client.post("/chat", json=request).text)
    assert [(d["data"][0]["output"], d["data"][0]["finish_reason"]) for d in deltas] == [("Checking. ", None)]
    assert upstream.calls(marker)[0].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    [item] = final["data"]
    assert item["finish_reason"] == "tool_call"
    [tool_call] = item["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Oslo"}


def test_json_mode_samples_and_images(client: httpx.Client, upstream: Loopback) -> None:
    reply = response(
        candidate({"text": '{"a": 1}'}), candidate({"text": '{"a": 2}'}, index=1, finish="MAX_TOKENS")
    )
    marker = upstream.script(Reply(body=reply))
    image = "data:image/png;base64,iVBORw0KGgo="
    content = [
        {"type": "text", "text": f"describe {marker}"},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    request = body(
        [{"role": "user", "content": content}], response_format={"type": "json_object"}, num_samples=2
    )
    result = client.post("/chat", json=request)
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.body["generationConfig"]["responseMimeType"] == "application/json"
    assert call.body["generationConfig"]["candidateCount"] == 2
    assert call.body["contents"][0]["parts"] == [
        {"text": f"describe {marker}"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
    ]
    data = result.json()["data"]
    assert [(d["index"], d["output"], d["finish_reason"]) for d in data] == [
        (0, '{"a": 1}', "stop"),
        (1, '{"a": 2}', "length"),
    ]


RESOURCE_EXHAUSTED = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    }
}


@pytest.mark.parametrize("stream", [False, True])
def test_error_mapped(client: httpx.Client, server: Server, upstream: Loopback, stream: bool) -> None:
    marker = upstream.script(Reply(429, RESOURCE_EXHAUSTED, headers={"Retry-After": "12"}))
    request = body(marker, stream=stream)
    result = client.post("/chat", json=request)
    assert result.status_code == 429, result.text
    assert result.headers["retry-after"] == "12"
    assert result.json() == {
        "detail": {
            "type": "rate_limit_error",
            "message": "Resource has been exhausted (e.g. check quota).",
            "code": 429,
            "origin": "Google",
        }
    }
    [log] = db_rows(
        server.database,
        "SELECT logs.* FROM logs JOIN projects ON logs.project_id = projects.id WHERE projects.name = ?",
        request["project"],
    )
    assert (log["status"], log["error"]) == (
        "error",
        "Google: Resource has been exhausted (e.g. check quota).",
    )


def test_invalid_key_status_kept(client: httpx.Client, upstream: Loopback) -> None:
    error = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
        }
    }
    marker = upstream.script(Reply(400, error))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 400
    assert result.json()["detail"]["origin"] == "Google"
    assert result.json()["detail"]["message"] == "API key not valid. Please pass a valid API key."


def test_blocked_prompt(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body={"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": MODEL}))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 400, result.text
    assert result.json()["detail"]["message"] == "Google blocked the prompt (SAFETY)"


def test_missing_key(servers: dict[str, Server], upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=response(candidate({"text": "never"}))))
    with servers["keyless"].client() as client:
        result = client.post("/chat", json=body(marker))
    assert result.status_code == 400, result.text
    detail = result.json()["detail"]
    assert detail["origin"] == "Google"
    assert "LOOPGATE_GOOGLE_API_KEY" in detail["message"]
    assert upstream.calls(marker) == []


def test_overloaded_is_retried(client: httpx.Client, upstream: Loopback) -> None:
    """A 503 before any answer is retried by the shared retry policy; the second call's answer is used."""
    replies = [
        Reply(503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
        Reply(body=response(candidate({"text": "Second time lucky"}))),
    ]
    marker = upstream.script(lambda _body: replies.pop(0))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 200, result.text
    assert result.json()["data"][0]["output"] == "Second time lucky"
    assert len(upstream.calls(marker)) == 2
