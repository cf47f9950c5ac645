"""Provider ``cohere``: the v2 Chat adapter end to end through a real ``loopgate serve``, against a loopback
fake of Cohere's documented wire format (``POST /v2/chat``; streams as ``event: <type>`` + ``data: <json>``
frames; errors as ``{"id", "message"}`` bodies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loopgate.store import content

from .conftest import Server, make_server
from .helpers import db_rows, sse_events, unique
from .loopback import Loopback, Reply, running, sse

pytestmark = pytest.mark.e2e

SERVER_KEY = "co-server-key"
REQUEST_KEY = "co-request-key"
MODEL = "command-r-plus-08-2024"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USAGE = {
    "billed_units": {"input_tokens": 5, "output_tokens": 3},
    "tokens": {"input_tokens": 70, "output_tokens": 3},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[Server]:
    instance = make_server(
        tmp_path_factory.mktemp("cohere"),
        LOOPGATE_COHERE_BASE_URL=upstream.url,
        LOOPGATE_COHERE_API_KEY=SERVER_KEY,
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def body(
    messages: list[dict[str, Any]] | str, *, key: str | None = REQUEST_KEY, **extra: Any
) -> dict[str, Any]:
    config = {"provider": "cohere", "model": MODEL, **extra.pop("model_config", {})}
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    found = {"project": unique("cohere"), "model_config": config, "messages": messages, **extra}
    if key:
        found["provider_api_keys"] = {"cohere": key}
    return found


def chat(text: str | None = None, finish: str = "COMPLETE", **message: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"role": "assistant", **message}
    if text is not None:
        found["content"] = [{"type": "text", "text": text}]
    return {"id": "c14c80c3-18eb", "finish_reason": finish, "message": found, "usage": USAGE}


def stream(*events: dict[str, Any]) -> list[bytes]:
    return sse(*events, event_names=[event["type"] for event in events])


def start() -> dict[str, Any]:
    message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    return {"id": "29f14a5a-stream", "type": "message-start", "delta": {"message": message}}


def text_delta(text: str) -> dict[str, Any]:
    return {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}}


def end(finish: str = "COMPLETE") -> dict[str, Any]:
    return {"type": "message-end", "delta": {"finish_reason": finish, "usage": USAGE}}


def stored(server: Server, log_id: str) -> dict[str, Any]:
    [log] = db_rows(server.database, "SELECT * FROM logs WHERE id = ?", log_id)
    blobs = {row["hash"]: row["data"] for row in db_rows(server.database, "SELECT hash, data FROM blobs")}
    document: dict[str, Any] = content.expand(json.loads(log["payload"]), blobs)
    return document


def test_plain(client: httpx.Client, server: Server, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=chat("Hello from Cohere")))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"hi {marker}"},
    ]
    config = {"temperature": 0.3, "top_p": 0.75, "max_tokens": 100, "stop": ["END"]}
    result = client.post("/chat", json=body(messages, model_config=config, seed=3))
    assert result.status_code == 200, result.text
    answer = result.json()
    [call] = upstream.calls(marker)
    assert call.path == "/v2/chat"
    assert call.headers["authorization"] == f"Bearer {REQUEST_KEY}"
    assert call.body == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"hi {marker}"}],
        "stream": False,
        "temperature": 0.3,
        "p": 0.75,
        "max_tokens": 100,
        "stop_sequences": ["END"],
        "seed": 3,
    }
    assert answer["provider_request"] == call.body
    assert answer["provider_responses"] == [chat("Hello from Cohere")]
    [item] = answer["data"]
    assert (item["output"], item["finish_reason"]) == ("Hello from Cohere", "stop")
    assert answer["usage"] == {"prompt_tokens": 70, "generation_tokens": 3, "total_tokens": 73}
    assert REQUEST_KEY not in json.dumps(stored(server, item["id"]))


def test_server_key_fallback(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=chat("ok")))
    assert client.post("/chat", json=body(marker, key=None)).status_code == 200
    assert upstream.calls(marker)[0].headers["authorization"] == f"Bearer {SERVER_KEY}"


def test_streamed(client: httpx.Client, server: Server, upstream: Loopback) -> None:
    events = [
        start(),
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        text_delta("One"),
        text_delta(" two"),
        text_delta(" three"),
        {"type": "content-end", "index": 0},
        end("MAX_TOKENS"),
    ]
    marker = upstream.script(Reply(frames=stream(*events)))
    *deltas, final = sse_events(client.post("/chat", json=body(f"count {marker}", stream=True)).text)
    assert [d["data"][0]["output"] for d in deltas] == ["One", " two", " three"]
    [item] = final["data"]
    assert item["finish_reason"] == "length"
    assert item["output_message"]["content"] == "One two three"
    assert final["usage"] == {"prompt_tokens": 70, "generation_tokens": 3, "total_tokens": 73}
    [call] = upstream.calls(marker)
    assert call.body["stream"] is True
    assert call.headers["accept"] == "text/event-stream"
    document = stored(server, item["id"])
    assert document["provider_request"] == call.body
    assert document["provider_responses"] == [
        {
            "id": "29f14a5a-stream",
            "finish_reason": "MAX_TOKENS",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "One two three"}]},
            "usage": USAGE,
            "stream_chunks": len(events),
        }
    ]


def test_tool_call(client: httpx.Client, upstream: Loopback) -> None:
    tool_call = {
        "id": "get_weather_1byjy32y4hvq",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Toronto"}'},
    }
    reply = chat(None, "TOOL_CALL", tool_plan="I will look up the weather.", tool_calls=[tool_call])
    marker = upstream.script(Reply(body=reply))
    result = client.post("/chat", json=body(f"weather {marker}", model_config={"tools": [WEATHER]}))
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.body["tools"] == [{"type": "function", "function": WEATHER}]
    assert "tool_choice" not in call.body  # auto is Cohere's default and has no wire value
    [item] = result.json()["data"]
    assert item["finish_reason"] == "tool_call"
    assert item["tool_calls"] == [tool_call]
    assert item["output"] in ("", None)


def test_tool_history_and_forced_function(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=chat("Sunny in Toronto.")))
    tool_call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"T"}'},
    }
    messages = [
        {"role": "user", "content": f"weather {marker}"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "sunny"}'},
    ]
    other = {"name": "noop", "parameters": {"type": "object", "properties": {}}}
    request = body(
        messages,
        model_config={"tools": [WEATHER, other]},
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    result = client.post("/chat", json=request)
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.body["messages"][1:] == [
        {"role": "assistant", "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "sunny"}'},
    ]
    assert call.body["tools"] == [{"type": "function", "function": WEATHER}]
    assert call.body["tool_choice"] == "REQUIRED"


def test_streamed_tool_call(client: httpx.Client, upstream: Loopback) -> None:
    events = [
        start(),
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check."}}},
        {
            "type": "tool-call-start",
            "index": 0,
            "delta": {
                "message": {
                    "tool_calls": {
                        "id": "get_weather_x1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                }
            },
        },
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city":'}}}},
        },
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": '"Oslo"}'}}}},
        },
        {"type": "tool-call-end", "index": 0},
        end("TOOL_CALL"),
    ]
    marker = upstream.script(Reply(frames=stream(*events)))
    request = body(marker, model_config={"tools": [WEATHER]}, tool_choice="required", stream=True)
    *_, final = sse_events(client.post("/chat", json=request).text)
    assert upstream.calls(marker)[0].body["tool_choice"] == "REQUIRED"
    [item] = final["data"]
    assert item["finish_reason"] == "tool_call"
    assert item["tool_calls"] == [
        {
            "id": "get_weather_x1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]


def test_json_mode_and_samples(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=chat('{"ok": true}')))
    result = client.post("/chat", json=body(marker, response_format={"type": "json_object"}, num_samples=2))
    assert result.status_code == 200, result.text
    calls = upstream.calls(marker)
    assert len(calls) == 2  # v2 has no n: one call per sample
    assert all(call.body["response_format"] == {"type": "json_object"} for call in calls)
    assert [(d["index"], d["output"]) for d in result.json()["data"]] == [
        (0, '{"ok": true}'),
        (1, '{"ok": true}'),
    ]
    assert result.json()["usage"]["generation_tokens"] == 6


def test_streamed_samples(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(frames=stream(start(), text_delta("same"), end())))
    events = sse_events(client.post("/chat", json=body(marker, num_samples=2, stream=True)).text)
    finals = [e for e in events if e["data"][0]["finish_reason"]]
    assert sorted(e["data"][0]["index"] for e in finals) == [0, 1]
    assert len(upstream.calls(marker)) == 2


@pytest.mark.parametrize("streamed", [False, True])
def test_error_mapped(client: httpx.Client, server: Server, upstream: Loopback, streamed: bool) -> None:
    error = {
        "id": "err-1",
        "message": "You are using a Trial key, which is limited to 10 API calls / minute.",
    }
    marker = upstream.script(Reply(429, error, headers={"Retry-After": "60"}))
    request = body(marker, stream=streamed)
    result = client.post("/chat", json=request)
    assert result.status_code == 429, result.text
    assert result.headers["retry-after"] == "60"
    assert result.json() == {
        "detail": {"type": "rate_limit_error", "message": error["message"], "code": 429, "origin": "Cohere"}
    }
    rows = db_rows(
        server.database,
        "SELECT logs.* FROM logs JOIN projects ON logs.project_id = projects.id WHERE projects.name = ?",
        request["project"],
    )
    assert [(row["status"], row["error"]) for row in rows] == [("error", f"Cohere: {error['message']}")]


def test_invalid_token(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(401, {"id": "err-2", "message": "invalid api token"}))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 401
    assert result.json()["detail"] == {
        "type": "authentication_error",
        "message": "invalid api token",
        "code": 401,
        "origin": "Cohere",
    }


def test_stream_refused_then_retried(client: httpx.Client, upstream: Loopback) -> None:
    """A 500 before the stream starts is retried; the stream that then starts is used once."""
    replies = [
        Reply(500, {"id": "err-3", "message": "internal server error"}),
        Reply(frames=stream(start(), text_delta("after a retry"), end())),
    ]
    marker = upstream.script(lambda _body: replies.pop(0))
    *deltas, final = sse_events(client.post("/chat", json=body(marker, stream=True)).text)
    assert [d["data"][0]["output"] for d in deltas] == ["after a retry"]
    assert final["data"][0]["finish_reason"] == "stop"
    assert len(upstream.calls(marker)) == 2
