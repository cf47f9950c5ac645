"""Provider ``openai_azure``: the OpenAI adapter at an Azure OpenAI deployment
(``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V``, key in ``api-key``),
driven end to end through a real ``loopgate serve`` against a loopback fake."""

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

SERVER_KEY = "azure-server-key"
REQUEST_KEY = "azure-request-key"
DEPLOYMENT = "gpt-4o-mini-prod"
VERSION = "2024-10-21"
PATH = f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[dict[str, Server]]:
    configured = make_server(
        tmp_path_factory.mktemp("azure"),
        LOOPGATE_OPENAI_AZURE_ENDPOINT=f"{upstream.url}/",
        LOOPGATE_OPENAI_AZURE_API_KEY=SERVER_KEY,
        LOOPGATE_OPENAI_AZURE_API_VERSION=VERSION,
    )
    bare = make_server(tmp_path_factory.mktemp("azure-bare"))
    fenced = make_server(
        tmp_path_factory.mktemp("azure-fenced"),
        LOOPGATE_OPENAI_AZURE_ENDPOINT_HOSTS="*.openai.azure.com, 127.0.0.2",
    )
    with serving(configured, bare, fenced):
        yield {"configured": configured, "bare": bare, "fenced": fenced}


@pytest.fixture
def client(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with servers["configured"].client() as http:
        yield http


def body(text: str, keys: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    config = {"provider": "openai_azure", "model": DEPLOYMENT, **extra.pop("model_config", {})}
    found = {
        "project": unique("azure"),
        "model_config": config,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    if keys:
        found["provider_api_keys"] = keys
    return found


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-az1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }


def test_plain_with_server_key_and_endpoint(client: httpx.Client, upstream: Loopback) -> None:
    marker = upstream.script(Reply(body=completion("Hello from Azure")))
    result = client.post("/chat", json=body(f"hi {marker}", model_config={"temperature": 0.2}))
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.path == PATH
    assert call.headers["api-key"] == SERVER_KEY
    assert "authorization" not in call.headers
    assert call.body["messages"] == [{"role": "user", "content": f"hi {marker}"}]
    assert call.body["temperature"] == 0.2
    answer = result.json()
    assert answer["provider_request"] == call.body
    assert answer["provider_responses"] == [completion("Hello from Azure")]
    assert answer["data"][0]["output"] == "Hello from Azure"
    assert answer["usage"] == {"prompt_tokens": 9, "generation_tokens": 4, "total_tokens": 13}


def test_request_key_and_endpoint_override(
    client: httpx.Client, servers: dict[str, Server], upstream: Loopback
) -> None:
    marker = upstream.script(Reply(body=completion("tenant b")))
    keys = {"openai_azure": REQUEST_KEY, "openai_azure_endpoint": f"{upstream.url}/tenant-b"}
    result = client.post("/chat", json=body(marker, keys))
    assert result.status_code == 200, result.text
    [call] = upstream.calls(marker)
    assert call.path == f"/tenant-b{PATH}"
    assert call.headers["api-key"] == REQUEST_KEY
    [log] = db_rows(
        servers["configured"].database, "SELECT * FROM logs WHERE id = ?", result.json()["data"][0]["id"]
    )
    assert REQUEST_KEY not in json.dumps(dict(log))


def test_request_endpoint_without_key_is_ignored(client: httpx.Client, upstream: Loopback) -> None:
    """The server's key never goes to an endpoint the client chose."""
    marker = upstream.script(Reply(body=completion("default")))
    keys = {"openai_azure_endpoint": f"{upstream.url}/elsewhere"}
    assert client.post("/chat", json=body(marker, keys)).status_code == 200
    [call] = upstream.calls(marker)
    assert (call.path, call.headers["api-key"]) == (PATH, SERVER_KEY)


def test_request_endpoints_outside_the_allowed_hosts_are_refused(
    servers: dict[str, Server], upstream: Loopback
) -> None:
    """With LOOPGATE_OPENAI_AZURE_ENDPOINT_HOSTS a key holder cannot aim the server at another address."""
    with servers["fenced"].client() as fenced:
        for endpoint in (
            f"{upstream.url}/internal",
            "http://openai.azure.com.evil.test/",
            "ftp://x.openai.azure.com",
        ):
            marker = upstream.script(Reply(body=completion("no")))
            keys = {"openai_azure": REQUEST_KEY, "openai_azure_endpoint": endpoint}
            refused = fenced.post("/chat", json=body(marker, keys))
            assert refused.status_code == 422, (endpoint, refused.text)
            assert refused.json()["detail"][0]["loc"] == [
                "body",
                "provider_api_keys",
                "openai_azure_endpoint",
            ]
            assert upstream.calls(marker) == []
        # An allowed host is called (nothing listens on 127.0.0.2's port: a 502, not a 422).
        port = upstream.url.rsplit(":", 1)[1]
        keys = {"openai_azure": REQUEST_KEY, "openai_azure_endpoint": f"http://127.0.0.2:{port}/"}
        reached = fenced.post("/chat", json=body(upstream.script(Reply(body=completion("yes"))), keys))
        assert reached.status_code != 422, reached.text


def test_streamed(client: httpx.Client, upstream: Loopback) -> None:
    chunks = [
        {"id": "c1", "object": "chat.completion.chunk", "choices": []},  # Azure's prompt-filter chunk
        {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Az"}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "ure"}, "finish_reason": "stop"}]},
    ]
    marker = upstream.script(Reply(frames=[*sse(*chunks), b"data: [DONE]\n\n"]))
    *deltas, final = sse_events(client.post("/chat", json=body(marker, stream=True)).text)
    assert [d["data"][0]["output"] for d in deltas] == ["Az", "ure"]
    assert final["data"][0]["output_message"]["content"] == "Azure"
    assert final["data"][0]["finish_reason"] == "stop"
    [call] = upstream.calls(marker)
    assert call.path == PATH
    assert call.body["stream"] is True


def test_error_mapped(client: httpx.Client, upstream: Loopback) -> None:
    error = {
        "error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded"}
    }
    marker = upstream.script(Reply(429, error, headers={"Retry-After": "60"}))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 429, result.text
    assert result.headers["retry-after"] == "60"
    assert result.json()["detail"] == {
        "type": "rate_limit_error",
        "message": error["error"]["message"],
        "code": 429,
        "origin": "Azure OpenAI",
    }


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        (None, ["LOOPGATE_OPENAI_AZURE_API_KEY", "LOOPGATE_OPENAI_AZURE_ENDPOINT"]),
        (
            {"openai_azure": REQUEST_KEY},
            ["provider_api_keys.openai_azure_endpoint", "LOOPGATE_OPENAI_AZURE_ENDPOINT"],
        ),
    ],
)
def test_missing_key_or_endpoint(
    servers: dict[str, Server], keys: dict[str, str] | None, named: list[str]
) -> None:
    with servers["bare"].client() as http:
        result = http.post("/chat", json=body("hello", keys))
    assert result.status_code == 400, result.text
    message = result.json()["detail"]["message"]
    assert all(name in message for name in named), message
    assert REQUEST_KEY not in message
