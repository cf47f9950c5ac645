"""LOOPGATE_UPSTREAMS: OpenAI-compatible servers declared by name and chosen by the model's ``NAME/`` prefix.

Two loopback fakes: ``declared`` behind the declared upstreams, ``default`` at LOOPGATE_OPENAI_BASE_URL.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import LOOPGATE, Server, make_server
from .helpers import sse_events, unique
from .loopback import Loopback, Reply, running, sse

pytestmark = pytest.mark.e2e

LOCAL_KEY = "local-upstream-key"
CLIENT_KEY = "sk-client-openai-key"
SERVER_KEY = "sk-server-openai-key"


@pytest.fixture(scope="module")
def declared() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def default() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, declared: Loopback, default: Loopback
) -> Iterator[Server]:
    upstreams = {
        "local": {"base_url": f"{declared.url}/v1", "api_key": LOCAL_KEY, "provider": "openai"},
        "ollama": {"base_url": f"{declared.url}/ollama/v1"},  # no key: no Authorization header
    }
    instance = make_server(
        tmp_path_factory.mktemp("upstreams"),
        LOOPGATE_OPENAI_BASE_URL=f"{default.url}/v1",
        LOOPGATE_OPENAI_API_KEY=SERVER_KEY,
        LOOPGATE_UPSTREAMS=json.dumps(upstreams),
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "project": unique("upstreams"),
        "model_config": {"provider": "openai", "model": model},
        "messages": [{"role": "user", "content": text}],
        "provider_api_keys": {"openai": CLIENT_KEY},
        **extra,
    }


def completion(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up1",
        "object": "chat.completion",
        "created": 1730000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def test_prefix_routes_to_declared_upstream(
    client: httpx.Client, declared: Loopback, default: Loopback
) -> None:
    marker = declared.script(Reply(body=completion("hi from local", "llama3")))
    response = client.post("/chat", json=body("local/llama3", f"hi {marker}"))
    assert response.status_code == 200, response.text
    result = response.json()
    [call] = declared.calls(marker)
    assert call.path == "/v1/chat/completions"
    assert call.body["model"] == "llama3"
    assert call.body == result["provider_request"]
    # The upstream's own key; the request's OpenAI key never reaches another host.
    assert call.headers["authorization"] == f"Bearer {LOCAL_KEY}"
    assert CLIENT_KEY not in json.dumps(call.headers)
    assert default.calls(marker) == []
    [item] = result["data"]
    assert item["output"] == "hi from local"
    log = client.get(f"/logs/{item['id']}")
    assert log.status_code == 200, log.text
    assert log.json()["config"]["model"] == "local/llama3"  # as the user wrote it


def test_keyless_upstream_gets_no_authorization(client: httpx.Client, declared: Loopback) -> None:
    marker = declared.script(Reply(body=completion("hi from ollama", "qwen2.5:7b")))
    response = client.post("/chat", json=body("ollama/qwen2.5:7b", marker))
    assert response.status_code == 200, response.text
    [call] = declared.calls(marker)
    assert call.path == "/ollama/v1/chat/completions"
    assert call.body["model"] == "qwen2.5:7b"
    assert "authorization" not in call.headers


@pytest.mark.parametrize("model", ["a/b", "meta-llama/Llama-3-8B", "llama3"])
def test_undeclared_model_goes_to_openai_base_url_untouched(
    client: httpx.Client, declared: Loopback, default: Loopback, model: str
) -> None:
    marker = default.script(Reply(body=completion("hi from default", model)))
    response = client.post("/chat", json=body(model, marker))
    assert response.status_code == 200, response.text
    [call] = default.calls(marker)
    assert call.path == "/v1/chat/completions"
    assert call.body["model"] == model
    assert call.headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert declared.calls(marker) == []


def test_streamed_through_declared_upstream(client: httpx.Client, declared: Loopback) -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": "chatcmpl-up2",
            "object": "chat.completion.chunk",
            "model": "llama3",
            "choices": [choice],
        }

    frames = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "One"}),
        chunk({"content": " two"}),
        chunk({}, "stop"),
        "[DONE]",
    )
    marker = declared.script(Reply(frames=frames))
    response = client.post("/chat", json=body("local/llama3", f"count {marker}", stream=True))
    assert response.status_code == 200, response.text
    *chunks, final = sse_events(response.text)
    assert [c["data"][0]["output"] for c in chunks] == ["One", " two"]
    assert final["data"][0]["output_message"]["content"] == "One two"
    [call] = declared.calls(marker)
    assert (call.body["model"], call.body["stream"]) == ("llama3", True)
    assert call.headers["authorization"] == f"Bearer {LOCAL_KEY}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{not json", "upstreams"),
        ('{"local": {"api_key": "secret-value"}}', "LOOPGATE_UPSTREAMS['local']['base_url']: Field required"),
        ('{"a/b": {"base_url": "http://127.0.0.1:1/v1"}}', "LOOPGATE_UPSTREAMS['a/b']"),
        ('{"x": {"base_url": "ftp://host/v1"}}', "LOOPGATE_UPSTREAMS['x']['base_url']"),
        ('{"x": {"base_url": "http://h/v1", "provider": "vllm"}}', "LOOPGATE_UPSTREAMS['x']['provider']"),
    ],
)
def test_invalid_upstreams_fail_at_start(tmp_path: Path, value: str, expected: str) -> None:
    env = {**make_server(tmp_path).env, "LOOPGATE_UPSTREAMS": value}
    result = subprocess.run(
        [*LOOPGATE, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.startswith("loopgate: invalid configuration:")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret-value" not in result.stderr
