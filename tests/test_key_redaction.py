"""An upstream that quotes the credentials it was sent in its error (a proxy or a self-hosted server echoing
the Authorization header, an API naming the key it refused): the request's key and the server's own keys
are ``[redacted]`` in the answer, the stored log, the log list and the database files -- on /v4 and the
OpenAI-compatible door, plain and streamed, before the stream and inside it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Server, make_server
from .helpers import chat_body, unique
from .loopback import Loopback, Reply, running, sse

pytestmark = pytest.mark.e2e

CLIENT_KEY = "sk-client-key-0123456789"
SERVER_KEY = "sk-server-key-9876543210"
DECLARED_KEY = "declared-upstream-key-555"
ANTHROPIC_SERVER_KEY = "sk-ant-server-key-24680"
SECRETS = (CLIENT_KEY, SERVER_KEY, DECLARED_KEY, ANTHROPIC_SERVER_KEY)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[Server]:
    instance = make_server(
        tmp_path_factory.mktemp("redaction"),
        LOOPGATE_OPENAI_BASE_URL=f"{upstream.url}/v1",
        LOOPGATE_OPENAI_API_KEY=SERVER_KEY,
        LOOPGATE_ANTHROPIC_BASE_URL=upstream.url,
        LOOPGATE_ANTHROPIC_API_KEY=ANTHROPIC_SERVER_KEY,
        LOOPGATE_UPSTREAMS=json.dumps({"local": {"base_url": f"{upstream.url}/v1", "api_key": DECLARED_KEY}}),
    )
    instance.start()
    yield instance
    instance.stop()


def refused(header: str = "authorization") -> Reply:
    """A 401 quoting the header, as a misconfigured proxy might."""
    return Reply(
        401, {"error": {"message": "Incorrect API key provided: {echo}", "code": "{echo}"}}, echo=header
    )


def openai(model: str = "gpt-4o") -> dict[str, str]:
    return {"provider": "openai", "model": model}


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_a_quoted_key_is_redacted_in_answers_and_logs(
    client: httpx.Client, server: Server, upstream: Loopback
) -> None:
    project = unique("redact")
    keys = {"openai": CLIENT_KEY}
    cases = [
        chat_body(project, upstream.script(refused()), model_config=openai(), provider_api_keys=keys),
        chat_body(project, upstream.script(refused()), model_config=openai()),  # the server's key
        chat_body(project, upstream.script(refused()), model_config=openai("local/llama")),
        chat_body(
            project,
            upstream.script(refused("x-api-key")),
            model_config={"provider": "anthropic", "model": "c"},
        ),
        chat_body(
            project, upstream.script(refused()), model_config=openai(), stream=True, provider_api_keys=keys
        ),
    ]
    for body in cases:
        answer = client.post("/chat", json=body)
        assert answer.status_code == 401, answer.text
        assert_clean(answer.text)
        assert "[redacted]" in answer.text

    # Inside a stream that started: the upstream's error event quotes the key.
    frames = sse({"error": {"message": "key {echo} was revoked"}})
    streamed = chat_body(
        project, upstream.script(Reply(frames=frames, echo="authorization")), model_config=openai()
    )
    answer = client.post("/chat", json={**streamed, "stream": True, "provider_api_keys": keys})
    assert_clean(answer.text)
    assert "[redacted]" in answer.text

    listed = client.get("/projects", params={"filter": project}).json()["records"]
    logs = client.get("/logs", params={"project_id": listed[0]["id"], "size": 50})
    assert logs.json()["total"] == len(cases) + 1
    assert_clean(logs.text)

    assert isinstance(server.database, Path)
    files = sorted(server.database.parent.glob(server.database.name + "*"))
    contents = b"".join(path.read_bytes() for path in files)
    assert b"[redacted]" in contents  # the errors were stored, without the keys
    for secret in SECRETS:
        assert secret.encode() not in contents


def test_the_openai_door_redacts_the_header_key(server: Server, upstream: Loopback) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}", "X-Provider-Api-Key": CLIENT_KEY}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": upstream.script(refused())}]}
    with httpx.Client(base_url=f"{server.base}/v1", headers=headers, timeout=30.0) as door:
        answer = door.post("/chat/completions", json=body)
    assert answer.status_code == 401, answer.text
    assert_clean(answer.text)
    assert "[redacted]" in answer.json()["error"]["message"]


def test_a_key_that_cannot_be_a_header_is_a_422(client: httpx.Client, upstream: Loopback) -> None:
    """A line break would start another header: the HTTP client refused it with a 500 before."""
    marker = upstream.script(Reply(200, {"choices": []}))
    keys = {"openai": f"{CLIENT_KEY}\r\nX-Evil: 1"}
    body = chat_body(unique("redact"), marker, model_config=openai(), provider_api_keys=keys)
    answer = client.post("/chat", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "provider_api_keys", "openai"]
    assert_clean(answer.text)
    assert upstream.calls(marker) == []
