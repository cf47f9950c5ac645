"""Provider ``bedrock``: the Converse adapter end to end through a real ``loopgate serve``, against a loopback
fake of the Bedrock runtime (``POST /model/{modelId}/converse`` and ``/converse-stream``, streams as
``application/vnd.amazon.eventstream`` frames). The fake checks every request's SigV4 signature by signing
what it received again with botocore."""

from __future__ import annotations

import binascii
import json
import re
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .conftest import Server, make_server, serving
from .helpers import db_rows, sse_events, unique
from .loopback import Loopback, Received, Reply, running

pytestmark = pytest.mark.e2e

ACCESS_KEY = "AKIALOOPBACKSERVER01"
SECRET_KEY = "server/secret/key/for/loopback/tests/000"
SESSION_TOKEN = "server-session-token"
REQUEST_ACCESS_KEY = "AKIALOOPBACKREQUEST1"
REQUEST_SECRET = "request/secret/key/for/loopback/tests/00"
REGION = "eu-west-3"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def verify_signature(upstream: Loopback, call: Received, secret: str) -> str:
    """The access key a request was signed with, once its Authorization header is well formed and its
    signature matches the path, headers and body that arrived."""
    found = AUTHORIZATION.fullmatch(call.headers["authorization"])
    assert found, call.headers["authorization"]
    assert found["region"] == REGION
    assert call.headers["x-amz-date"].startswith(found["date"])
    signed = found["signed"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    request = AWSRequest(
        method="POST",
        url=upstream.url + call.path,
        data=orjson.dumps(call.body),
        headers={name: call.headers[name] for name in signed},
    )
    request.context["timestamp"] = call.headers["x-amz-date"]
    token = call.headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(found["key"], secret, token), "bedrock", REGION)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    assert signer.signature(string_to_sign, request) == found["signature"]
    return found["key"]


def frame(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One ``application/vnd.amazon.eventstream`` message: prelude (total length, headers length, CRC32),
    headers, payload, CRC32 of everything before it."""
    kind = ":exception-type" if message_type == "exception" else ":event-type"
    headers = b""
    for name, value in (
        (kind, event_type),
        (":content-type", "application/json"),
        (":message-type", message_type),
    ):
        headers += (
            bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
        )
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 16 + len(headers) + len(body), len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def eventstream(*frames: bytes) -> Reply:
    return Reply(frames=list(frames), content_type="application/vnd.amazon.eventstream")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[dict[str, Server]]:
    common = {"LOOPGATE_BEDROCK_BASE_URL": upstream.url, "LOOPGATE_BEDROCK_REGION": REGION}
    keyed = make_server(
        tmp_path_factory.mktemp("bedrock"),
        LOOPGATE_BEDROCK_ACCESS_KEY_ID=ACCESS_KEY,
        LOOPGATE_BEDROCK_SECRET_ACCESS_KEY=SECRET_KEY,
        LOOPGATE_BEDROCK_SESSION_TOKEN=SESSION_TOKEN,
        **common,
    )
    keyless = make_server(tmp_path_factory.mktemp("bedrock-nokey"), **common)
    with serving(keyed, keyless):
        yield {"keyed": keyed, "keyless": keyless}


@pytest.fixture
def client(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with servers["keyed"].client() as http:
        yield http


def body(messages: list[dict[str, Any]] | str, **extra: Any) -> dict[str, Any]:
    config = {"provider": "bedrock", "model": MODEL, **extra.pop("model_config", {})}
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"project": unique("bedrock"), "model_config": config, "messages": messages, **extra}


def converse(*content: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop,
        "usage": {"inputTokens": 25, "outputTokens": 7, "totalTokens": 32},
        "metrics": {"latencyMs": 310},
    }


def test_plain_signed(client: httpx.Client, upstream: Loopback) -> None:
    reply = converse({"text": "Hello from Bedrock"})
    marker = upstream.script(Reply(body=reply))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"hi {marker}"}]
    config = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 200, "stop": "END"}
    result = client.post("/chat", json=body(messages, model_config=config))
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.path == f"{PATH}/converse"
    assert verify_signature(upstream, call, SECRET_KEY) == ACCESS_KEY
    assert call.headers["x-amz-security-token"] == SESSION_TOKEN
    assert call.body == {
        "messages": [{"role": "user", "content": [{"text": f"hi {marker}"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
    }
    answer = result.json()
    assert answer["provider_request"] == call.body
    assert answer["provider_responses"] == [reply]
    [item] = answer["data"]
    assert (item["output"], item["finish_reason"]) == ("Hello from Bedrock", "stop")
    assert answer["usage"] == {"prompt_tokens": 25, "generation_tokens": 7, "total_tokens": 32}


def test_request_credentials(servers: dict[str, Server], upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=converse({"text": "ok"})))
    request = body(marker, provider_api_keys={"bedrock": f"{REQUEST_ACCESS_KEY}:{REQUEST_SECRET}"})
    with servers["keyless"].client() as http:
        result = http.post("/chat", json=request)
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert verify_signature(upstream, call, REQUEST_SECRET) == REQUEST_ACCESS_KEY
    assert "x-amz-security-token" not in call.headers
    [log] = db_rows(
        servers["keyless"].database, "SELECT * FROM logs WHERE id = ?", result.json()["data"][0]["id"]
    )
    assert REQUEST_SECRET not in json.dumps(dict(log))


def test_missing_credentials(servers: dict[str, Server]) -> None:
    with servers["keyless"].client() as http:
        result = http.post("/chat", json=body("hello"))
    assert result.status_code == 400
    message = result.json()["detail"]["message"]
    assert "provider_api_keys.bedrock" in message and "LOOPGATE_BEDROCK_ACCESS_KEY_ID" in message


def test_tools(client: httpx.Client, upstream: Loopback) -> None:
    use = {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather", "input": {"city": "Lyon"}}
    marker = upstream.script(Reply(body=converse({"text": "Checking."}, {"toolUse": use}, stop="tool_use")))
    earlier = {
        "id": "t0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    messages = [
        {"role": "user", "content": f"weather {marker}"},
        {"role": "assistant", "content": None, "tool_calls": [earlier]},
        {"role": "tool", "tool_call_id": "t0", "content": "sunny"},
        {"role": "user", "content": "and Lyon?"},
    ]
    request = body(
        messages,
        model_config={"tools": [WEATHER]},
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    result = client.post("/chat", json=request)
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t0", "name": "get_weather", "input": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t0", "content": [{"text": "sunny"}]}},
                {"text": "and Lyon?"},
            ],
        },
    ]
    assert call.body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": WEATHER["description"],
                    "inputSchema": {"json": WEATHER["parameters"]},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "get_weather"}},
    }
    [item] = result.json()["data"]
    assert item["finish_reason"] == "tool_call"
    assert item["output"] == "Checking."
    assert item["tool_calls"] == [
        {
            "id": use["toolUseId"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
        }
    ]


def test_streamed(client: httpx.Client, servers: dict[str, Server], upstream: Loopback) -> None:
    usage = {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15}
    frames = [
        frame("messageStart", {"role": "assistant", "p": "abcd"}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "One"}}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " two"}}),
        frame("contentBlockStop", {"contentBlockIndex": 0}),
        frame("messageStop", {"stopReason": "max_tokens"}),
        frame("metadata", {"usage": usage, "metrics": {"latencyMs": 120}}),
    ]
    marker = upstream.script(eventstream(*frames))
    *deltas, final = sse_events(client.post("/chat", json=body(f"count {marker}", stream=True)).text)
    assert [d["data"][0]["output"] for d in deltas] == ["One", " two"]
    [item] = final["data"]
    assert (item["output_message"]["content"], item["finish_reason"]) == ("One two", "length")
    assert final["usage"] == {"prompt_tokens": 12, "generation_tokens": 3, "total_tokens": 15}
    [call] = upstream.calls(marker)
    assert call.path == f"{PATH}/converse-stream"
    verify_signature(upstream, call, SECRET_KEY)
    [log] = db_rows(servers["keyed"].database, "SELECT payload FROM logs WHERE id = ?", item["id"])
    assert '"stream_chunks"' in log["payload"]


def test_streamed_tool_use(client: httpx.Client, upstream: Loopback) -> None:
    start = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}
    frames = [
        frame("messageStart", {"role": "assistant"}),
        frame("contentBlockStart", {"contentBlockIndex": 0, "start": start}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"city":'}}}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '"Oslo"}'}}}),
        frame("contentBlockStop", {"contentBlockIndex": 0}),
        frame("messageStop", {"stopReason": "tool_use"}),
    ]
    marker = upstream.script(eventstream(*frames))
    request = body(marker, model_config={"tools": [WEATHER]}, tool_choice="required", stream=True)
    *_, final = sse_events(client.post("/chat", json=request).text)
    assert upstream.calls(marker)[0].body["toolConfig"]["toolChoice"] == {"any": {}}
    [item] = final["data"]
    assert item["finish_reason"] == "tool_call"
    assert item["tool_calls"] == [
        {
            "id": "tooluse_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert final["usage"]["generation_tokens"] > 0  # no metadata event: counted by loopgate


@pytest.mark.parametrize("streamed", [False, True])
def test_error_mapped(client: httpx.Client, upstream: Loopback, streamed: bool) -> None:
    error = {"message": "The provided model identifier is invalid."}
    marker = upstream.script(
        Reply(400, error, headers={"x-amzn-ErrorType": "ValidationException:http://internal"})
    )
    result = client.post("/chat", json=body(marker, stream=streamed))
    assert result.status_code == 400, result.text
    assert result.json()["detail"] == {
        "type": "bad_request_error",
        "message": error["message"],
        "code": 400,
        "origin": "Bedrock",
    }


def test_stream_exception_frame(client: httpx.Client, upstream: Loopback) -> None:
    frames = [
        frame("messageStart", {"role": "assistant"}),
        frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "partial"}}),
        frame("throttlingException", {"message": "Too many tokens, please wait."}, message_type="exception"),
    ]
    marker = upstream.script(eventstream(*frames))
    events = sse_events(client.post("/chat", json=body(marker, stream=True)).text)
    assert events[0]["data"][0]["output"] == "partial"
    assert "Too many tokens, please wait." in json.dumps(events[-1])
