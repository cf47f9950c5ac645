"""Provider ``anthropic`` end to end: a real ``loopgate serve`` calling the Messages API over loopback.

The first half runs against fakellm 0.3.5's ``/v1/messages`` (a server nobody on this team wrote; rules in
``tests/fakellm.yaml``, which match Anthropic requests too). fakellm cannot express everything (it ignores
``status`` for streams, checks no headers, sends no cache usage), so the second half runs against a scripted
loopback upstream that asserts the exact request shape and replays Anthropic's documented stream frames
byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from loopgate.providers.anthropic_wire import build_request
from loopgate.providers.base import GenerationCall
from loopgate.store import content

from .conftest import Server, fakellm_process, make_server
from .helpers import WEATHER_TOOL, db_rows, sse_events, unique
from .loopback import Loopback, Reply, running

pytestmark = pytest.mark.e2e

KEY = "sk-ant-loopgate-test"
MODEL = "claude-sonnet-4-5"
STREAM_TEXT = "The quick brown fox jumps over the lazy dog."
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}


def chat(text: str | None = None, *, key: str | None = KEY, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "project": extra.pop("project", None) or unique("anth"),
        "model_config": {"provider": "anthropic", "model": MODEL, **extra.pop("model_config", {})},
        "messages": extra.pop("messages", None) or [{"role": "user", "content": text}],
        **extra,
    }
    if key is not None:
        body["provider_api_keys"] = {"anthropic": key}
    return body


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


def logs(server: Server, project: str) -> list[Any]:
    return db_rows(
        server.database,
        "SELECT logs.* FROM logs JOIN projects ON logs.project_id = projects.id "
        "WHERE projects.name = ? ORDER BY logs.created_at, logs.sample_index",
        project,
    )


def stored(server: Server, log: Any) -> dict[str, Any]:
    blobs = {r["hash"]: r["data"] for r in db_rows(server.database, "SELECT hash, data FROM blobs")}
    document: dict[str, Any] = content.expand(json.loads(log["payload"]), blobs)
    return document


def fingerprint(body: dict[str, Any]) -> str:
    serialized = json.dumps(body, sort_keys=True, default=str).encode()
    return f"[mock response for {body['model']}, fingerprint {hashlib.sha256(serialized).hexdigest()[:8]}]"


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fakellm_process(tmp_path_factory.mktemp("fakellm-anthropic")) as (port, _process):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, fakellm: str, upstream: Loopback
) -> Iterator[dict[str, Server]]:
    """``fake``: loopgate -> fakellm, no server key. ``own``: loopgate -> loopback, with a fallback key.
    Retries are off on both (tests/test_retries.py covers them)."""
    specs = {
        "fake": {"LOOPGATE_ANTHROPIC_BASE_URL": fakellm},
        "own": {"LOOPGATE_ANTHROPIC_BASE_URL": upstream.url, "LOOPGATE_ANTHROPIC_API_KEY": "sk-ant-fallback"},
    }
    made = {
        name: make_server(
            tmp_path_factory.mktemp(f"anthropic-{name}"), LOOPGATE_PROVIDER_MAX_RETRIES="0", **env
        )
        for name, env in specs.items()
    }
    try:
        with ThreadPoolExecutor(len(made)) as pool:
            for future in [pool.submit(server.start) for server in made.values()]:
                future.result()
        yield made
    finally:
        for server in made.values():
            server.stop()


@pytest.fixture
def fake(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with servers["fake"].client() as client:
        yield client


@pytest.fixture
def own(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with servers["own"].client() as client:
        yield client


# -- against fakellm ------------------------------------------------------------------------------------


def test_plain(fake: httpx.Client, servers: dict[str, Server]) -> None:
    body = chat("fk-plain: say bonjour")
    response = fake.post("/chat", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    raw = "  Bonjour from fakellm: plain and simple.  "
    [item] = result["data"]
    assert (item["raw_output"], item["output"], item["finish_reason"]) == (raw, raw.strip(), "stop")
    assert item["tool_calls"] is None
    assert result["provider_request"] == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "fk-plain: say bonjour"}],
        "max_tokens": 4096,  # the config's -1: Anthropic requires a value
        "temperature": 1.0,
    }
    [upstream] = result["provider_responses"]
    assert upstream["type"] == "message"
    assert upstream["id"].startswith("msg_")
    assert upstream["content"] == [{"type": "text", "text": raw}]
    usage = upstream["usage"]
    assert result["usage"] == {
        "prompt_tokens": usage["input_tokens"],
        "generation_tokens": usage["output_tokens"],
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }
    [log] = logs(servers["fake"], body["project"])
    assert (log["status"], log["output"], log["finish_reason"]) == ("complete", raw.strip(), "stop")
    assert stored(servers["fake"], log)["provider_request"] == result["provider_request"]


def test_provider_request_is_exactly_what_fakellm_received(fake: httpx.Client) -> None:
    """An unmatched request is answered with a hash of the body fakellm parsed: it must hash to ours."""
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "no rule for this"}]
    config = {"max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stop": "\n\n", "other": {"top_k": 5}}
    response = fake.post("/chat", json=chat(messages=messages, model_config=config, user="alice"))
    assert response.status_code == 200, response.text
    sent = response.json()["provider_request"]
    assert sent == {
        "model": MODEL,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "no rule for this"}],
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
        "metadata": {"user_id": "alice"},
        "top_k": 5,
    }
    assert response.json()["data"][0]["raw_output"] == fingerprint(sent)


def test_streamed(fake: httpx.Client, servers: dict[str, Server]) -> None:
    body = chat("fk-stream please", stream=True)
    *chunks, final = events_of(fake.post("/chat", json=body))
    words = STREAM_TEXT.split(" ")
    assert len(chunks) == len(words)  # one event per text_delta
    assert "".join(c["data"][0]["output"] for c in chunks) == STREAM_TEXT
    assert all(c["data"][0]["finish_reason"] is None for c in chunks)
    [item] = final["data"]
    assert (item["finish_reason"], item["output_message"]["content"]) == ("stop", STREAM_TEXT)
    # fakellm's message_start says 1 input token, its message_delta len(text) // 4 output tokens.
    assert final["usage"] == {"prompt_tokens": 1, "generation_tokens": 11, "total_tokens": 12}
    [log] = logs(servers["fake"], body["project"])
    assert (log["status"], log["output"], log["output_tokens"]) == ("complete", STREAM_TEXT, 11)
    document = stored(servers["fake"], log)
    assert document["provider_request"]["stream"] is True
    [assembled] = document["provider_responses"]
    assert assembled["id"].startswith("msg_")
    assert assembled["content"] == [{"type": "text", "text": STREAM_TEXT}]
    assert (assembled["stop_reason"], assembled["usage"]) == (
        "end_turn",
        {"input_tokens": 1, "output_tokens": 11},
    )
    # message_start, content_block_start, the words, content_block_stop, message_delta, message_stop
    assert assembled["stream_events"] == len(words) + 5


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call(fake: httpx.Client, servers: dict[str, Server], stream: bool) -> None:
    body = chat("Weather in Paris?", model_config={"tools": [WEATHER_TOOL]}, stream=stream)
    response = fake.post("/chat", json=body)
    if stream:
        *chunks, final = events_of(response)
        assert all(c["data"][0]["finish_reason"] is None for c in chunks)
        [item] = final["data"]
    else:
        assert response.status_code == 200, response.text
        [item] = response.json()["data"]
        sent = response.json()["provider_request"]
        assert sent["tools"] == [
            {
                "name": "get_weather",
                "description": "Current weather in a city",
                "input_schema": WEATHER_TOOL["parameters"],
            }
        ]
        assert sent["tool_choice"] == {"type": "auto"}
    assert item["finish_reason"] == "tool_call"
    [call] = item["tool_calls"]
    assert call["id"].startswith("toolu_")
    assert (call["type"], call["function"]["name"]) == ("function", "get_weather")
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS  # streamed: four pieces reassembled
    assert item["output_message"]["tool_calls"] == item["tool_calls"]
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}
    [log] = logs(servers["fake"], body["project"])
    assert (log["status"], log["finish_reason"]) == ("complete", "tool_call")
    if stream:
        [assembled] = stored(servers["fake"], log)["provider_responses"]
        assert assembled["content"][0]["input"] == WEATHER_ARGS


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
def test_fault_mapped(
    fake: httpx.Client, servers: dict[str, Server], marker: str, status: int, error_type: str, message: str
) -> None:
    body = chat(f"{marker} now")
    response = fake.post("/chat", json=body)
    assert response.status_code == status, response.text
    assert response.json() == {
        "detail": {"type": error_type, "message": message, "code": status, "origin": "Anthropic"}
    }
    [log] = logs(servers["fake"], body["project"])
    assert (log["status"], log["error"]) == ("error", f"Anthropic: {message}")


@pytest.mark.parametrize("stream", [False, True])
def test_num_samples_are_concurrent_calls(
    fake: httpx.Client, servers: dict[str, Server], stream: bool
) -> None:
    body = chat("fk-samples", num_samples=3, stream=stream)
    response = fake.post("/chat", json=body)
    if stream:
        events = events_of(response)
        finals = [e["data"][0] for e in events if e["data"][0]["finish_reason"]]
        assert sorted(f["index"] for f in finals) == [0, 1, 2]
        assert all(f["output_message"]["content"] == "One sample of several." for f in finals)
    else:
        assert response.status_code == 200, response.text
        result = response.json()
        assert [i["raw_output"] for i in result["data"]] == ["One sample of several."] * 3
        assert len(result["provider_responses"]) == 3
        assert "n" not in result["provider_request"]
    saved = logs(servers["fake"], body["project"])
    assert [log["sample_index"] for log in saved] == [0, 1, 2]
    assert len(stored(servers["fake"], saved[0])["provider_responses"]) == 3


def test_missing_key_names_both_sources(fake: httpx.Client) -> None:
    response = fake.post("/chat", json=chat("fk-plain", key=None))
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert (detail["code"], detail["origin"]) == (400, "Anthropic")
    assert "provider_api_keys.anthropic" in detail["message"]
    assert "LOOPGATE_ANTHROPIC_API_KEY" in detail["message"]


# -- against a scripted upstream ------------------------------------------------------------------------

ASSISTANT_TOOL_CALLS = [
    {
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    },
    {
        "id": "toolu_02",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    },
]


def message(*blocks: dict[str, Any], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": list(blocks),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    }


def test_request_shape(own: httpx.Client, upstream: Loopback) -> None:
    answer = message(
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool_use",
            "id": "toolu_03",
            "name": "get_weather",
            "input": {"city": "Paris", "day": "tomorrow"},
        },
        stop="tool_use",
        input_tokens=100,
        cache_read_input_tokens=20,
        output_tokens=30,
    )
    marker = upstream.script(Reply(body=answer))
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"{marker}: weather where these are?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": ASSISTANT_TOOL_CALLS},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "3C"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    config = {"tools": [WEATHER_TOOL], "stop": ["END"], "presence_penalty": 0.5, "seed": 3}
    choice = {"type": "function", "function": {"name": "get_weather"}}
    response = own.post("/chat", json=chat(messages=messages, model_config=config, tool_choice=choice))
    assert response.status_code == 200, response.text
    [received] = upstream.calls(marker)
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in received.headers
    assert received.body == {
        "model": MODEL,
        "system": "You are a weather bot.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"{marker}: weather where these are?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": "3C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "max_tokens": 4096,
        "temperature": 1.0,
        "stop_sequences": ["END"],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather in a city",
                "input_schema": WEATHER_TOOL["parameters"],
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather"},
    }
    result = response.json()
    assert result["provider_request"] == received.body
    assert result["provider_responses"] == [answer]
    [item] = result["data"]
    assert (item["raw_output"], item["finish_reason"]) == ("Let me check.", "tool_call")
    assert item["tool_calls"] == [
        {
            "id": "toolu_03",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","day":"tomorrow"}'},
        }
    ]
    assert result["usage"] == {"prompt_tokens": 120, "generation_tokens": 30, "total_tokens": 150}


def test_server_key_is_the_fallback(own: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=message({"type": "text", "text": "hi"})))
    assert own.post("/chat", json=chat(marker, key=None)).status_code == 200
    [received] = upstream.calls(marker)
    assert received.headers["x-api-key"] == "sk-ant-fallback"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    tool = {"type": "function", "function": WEATHER_TOOL}
    call = GenerationCall(
        model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[tool], tool_choice=choice
    )
    assert build_request(call, stream=False)["tool_choice"] == expected


# Anthropic's documented stream of a plain answer, as its API writes it.
DOCUMENTED_TEXT_STREAM = [
    b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}\n\n',  # noqa: E501
    b'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}\n\n',  # noqa: E501
    b'event: ping\ndata: {"type": "ping"}\n\n',
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}\n\n',  # noqa: E501
    b'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 0}\n\n',
    b'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}\n\n',  # noqa: E501
    b'event: message_stop\ndata: {"type": "message_stop"}\n\n',
]

# Anthropic's documented stream of a tool call: text first, then the input JSON in pieces.
DOCUMENTED_TOOL_STREAM = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}\n\n',  # noqa: E501
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',  # noqa: E501
    b'event: ping\ndata: {"type": "ping"}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let\'s check the weather."}}\n\n',  # noqa: E501
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San Francisc"}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o, CA\\", \\"unit\\": \\"fah"}}\n\n',  # noqa: E501
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\\"}"}}\n\n',  # noqa: E501
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}\n\n',  # noqa: E501
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


def test_documented_text_stream(own: httpx.Client, servers: dict[str, Server], upstream: Loopback) -> None:
    marker = upstream.script(Reply(frames=DOCUMENTED_TEXT_STREAM))
    body = chat(marker, stream=True)
    *chunks, final = events_of(own.post("/chat", json=body))
    assert [c["data"][0]["output"] for c in chunks] == ["Hello", "!"]  # the ping makes no event
    assert final["data"][0]["finish_reason"] == "stop"
    assert final["usage"] == {"prompt_tokens": 25, "generation_tokens": 15, "total_tokens": 40}
    [received] = upstream.calls(marker)
    assert received.body["stream"] is True
    [log] = logs(servers["own"], body["project"])
    assert (log["status"], log["output"], log["prompt_tokens"]) == ("complete", "Hello!", 25)
    [assembled] = stored(servers["own"], log)["provider_responses"]
    assert assembled == {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello!"}],
        "model": "claude-sonnet-4-5",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 15},
        "stream_events": 8,
    }


def test_documented_tool_stream(own: httpx.Client, servers: dict[str, Server], upstream: Loopback) -> None:
    marker = upstream.script(Reply(frames=DOCUMENTED_TOOL_STREAM))
    body = chat(marker, stream=True, model_config={"tools": [WEATHER_TOOL]})
    *chunks, final = events_of(own.post("/chat", json=body))
    assert "".join(c["data"][0]["output"] for c in chunks) == "Okay, let's check the weather."
    [item] = final["data"]
    assert item["finish_reason"] == "tool_call"
    arguments = '{"location": "San Francisco, CA", "unit": "fahrenheit"}'
    assert item["tool_calls"] == [
        {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }
    ]
    assert final["usage"] == {"prompt_tokens": 472, "generation_tokens": 89, "total_tokens": 561}
    [log] = logs(servers["own"], body["project"])
    [assembled] = stored(servers["own"], log)["provider_responses"]
    assert assembled["content"][1]["input"] == {"location": "San Francisco, CA", "unit": "fahrenheit"}


def test_error_event_mid_stream(own: httpx.Client, servers: dict[str, Server], upstream: Loopback) -> None:
    frames = [
        *DOCUMENTED_TEXT_STREAM[:4],
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',  # noqa: E501
    ]
    marker = upstream.script(Reply(frames=frames))
    body = chat(marker, stream=True)
    *chunks, last = events_of(own.post("/chat", json=body))
    assert [c["data"][0]["output"] for c in chunks] == ["Hello"]
    assert last == {
        "detail": {
            "type": "internal_server_error",
            "message": "Overloaded",
            "code": 529,
            "origin": "Anthropic",
        }
    }


@pytest.mark.parametrize("stream", [False, True])
def test_status_error_keeps_status_and_headers(own: httpx.Client, upstream: Loopback, stream: bool) -> None:
    error = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit",
        },
    }
    marker = upstream.script(
        Reply(429, error, headers={"retry-after": "12", "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG"})
    )
    body = chat(marker, stream=stream)
    response = own.post("/chat", json=body)
    assert response.status_code == 429, response.text
    assert response.json()["detail"] == {
        "type": "rate_limit_error",
        "message": error["error"]["message"],
        "code": 429,
        "origin": "Anthropic",
    }
    assert response.headers["retry-after"] == "12"
    assert response.headers["request-id"] == "req_018EeWyXxfu5pfWkrYcMdjWG"
    assert len(upstream.calls(marker)) == 1
