"""The OpenAI adapter end to end: a real ``loopgate serve`` calling upstreams over loopback.

Most tests run against fakellm 0.3.5 (PyPI), an OpenAI-shaped server nobody on this team wrote, driven by
the rules in ``tests/fakellm.yaml``. fakellm cannot express everything a real upstream does (it ignores
``n``, never sends logprobs, sends no usage in streams, ignores ``status`` for streamed requests, sets no
``Retry-After``), so the second half runs the same adapter against a tiny scripted upstream of our own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopgate import tokens
from loopgate.errors import UpstreamStatusError
from loopgate.providers.base import GenerationCall
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.store import content

from .conftest import Server, fakellm_process, make_server

pytestmark = pytest.mark.e2e

# Sent as provider_api_keys.openai on every request of this module; it must never reach the database.
SECRET_KEY = f"sk-loopgate-test-{uuid.uuid4().hex}"

STREAM_TEXT = (
    "The quick brown fox jumps over the lazy dog."  # the `stream` rule; fakellm sends one word a chunk
)
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}


# -- helpers --------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def chat_body(project: str, text: str, *, key: str | None = SECRET_KEY, **extra: Any) -> dict[str, Any]:
    config = {"provider": "openai", "model": "gpt-4o", **extra.pop("model_config", {})}
    body: dict[str, Any] = {
        "project": project,
        "model_config": config,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    if key is not None:
        body["provider_api_keys"] = {"openai": key}
    return body


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def rows(database: Path, query: str, *params: Any) -> list[sqlite3.Row]:
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(query, params).fetchall()
    finally:
        connection.close()


def project_logs(database: Path, project: str) -> list[sqlite3.Row]:
    return rows(
        database,
        "SELECT logs.* FROM logs JOIN projects ON logs.project_id = projects.id "
        "WHERE projects.name = ? ORDER BY logs.created_at, logs.sample_index",
        project,
    )


def eventual_logs(database: Path, project: str, count: int = 1) -> list[sqlite3.Row]:
    """For a stream that failed after its 200: the error event goes out before its log is committed
    (service/streaming.py queues that write without waiting), so the row may land a moment later."""
    deadline = time.monotonic() + 5
    while len(found := project_logs(database, project)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def payload(database: Path, row: sqlite3.Row) -> dict[str, Any]:
    """A log's payload document with its blob references expanded."""
    blobs = {r["hash"]: r["data"] for r in rows(database, "SELECT hash, data FROM blobs")}
    document: dict[str, Any] = content.expand(json.loads(row["payload"]), blobs)
    return document


def fingerprint(body: dict[str, Any]) -> str:
    """fakellm's deterministic echo: a hash of the exact request body it received."""
    serialized = json.dumps(body, sort_keys=True, default=str).encode()
    return f"[mock response for {body['model']}, fingerprint {hashlib.sha256(serialized).hexdigest()[:8]}]"


def by_index(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        assert len(event["data"]) == 1, "each SSE event carries exactly one sample"
        grouped.setdefault(event["data"][0]["index"], []).append(event)
    return grouped


def assert_provider_error(response: httpx.Response, status: int, error_type: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "detail": {"type": error_type, "message": message, "code": status, "origin": "OpenAI"}
    }


# -- fakellm --------------------------------------------------------------------------------------------


@dataclass
class FakeLLM:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.url}/_fakellm/stats", timeout=5).json()
        return stats

    def calls(self, rule: str) -> int:
        """Requests fakellm has matched to ``rule`` so far (its own count: proof a call reached it)."""
        count: int = self.stats()["by_rule"].get(rule, 0)
        return count

    def total(self) -> int:
        total: int = self.stats()["total_requests"]
        return total


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLLM]:
    with fakellm_process(tmp_path_factory.mktemp("fakellm")) as (port, process):
        yield FakeLLM(port, process)


@contextlib.contextmanager
def loopgates(
    factory: pytest.TempPathFactory, base_url: str, names: list[str], **env: str
) -> Iterator[dict[str, Server]]:
    """Several loopgate servers on one upstream, started in parallel (each start is seconds of subprocess
    work). A server used by one test only starts with an adapter that has learnt nothing of its upstream.
    Retries are off: these tests count upstream calls per request (tests/test_retries.py tests retrying)."""
    env = {"LOOPGATE_PROVIDER_MAX_RETRIES": "0", **env}

    def start(name: str) -> Server:
        server = make_server(factory.mktemp(f"loopgate-{name}"), LOOPGATE_OPENAI_BASE_URL=base_url, **env)
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        return server

    with ThreadPoolExecutor(len(names)) as pool:
        futures = {name: pool.submit(start, name) for name in names}
        wait(futures.values())
    started = {name: f.result() for name, f in futures.items() if f.exception() is None}
    try:
        for future in futures.values():
            future.result()  # re-raise the first failure, after which every started server is stopped
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def fakellm_servers(
    tmp_path_factory: pytest.TempPathFactory, fakellm: FakeLLM
) -> Iterator[dict[str, Server]]:
    """loopgate -> fakellm, with no server-side OpenAI key (every request brings its own)."""
    names = ["main", "top-up", "top-up-stream"]
    with loopgates(tmp_path_factory, f"{fakellm.url}/v1", names) as servers:
        yield servers


@pytest.fixture(scope="module")
def server(fakellm_servers: dict[str, Server]) -> Server:
    return fakellm_servers["main"]


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


# -- plain chat -----------------------------------------------------------------------------------------


def test_plain_chat(client: httpx.Client, server: Server, fakellm: FakeLLM) -> None:
    project = unique("fk-plain")
    before = fakellm.calls("plain")
    response = client.post("/chat", json=chat_body(project, "fk-plain: say bonjour"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert fakellm.calls("plain") == before + 1

    [item] = body["data"]
    raw = "  Bonjour from fakellm: plain and simple.  "
    assert item["index"] == 0
    assert item["raw_output"] == raw
    assert item["output"] == raw.strip()
    assert item["finish_reason"] == "stop"
    assert item["output_message"]["role"] == "assistant"
    assert item["output_message"]["content"] == raw
    assert item["tool_calls"] is None

    # The exact body sent upstream, and fakellm's own response body.
    assert body["provider_request"] == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "fk-plain: say bonjour"}],
        "stream": False,
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    [upstream] = body["provider_responses"]
    assert upstream["id"].startswith("chatcmpl-")
    assert upstream["object"] == "chat.completion"
    assert upstream["model"] == "gpt-4o"
    assert upstream["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": raw}, "finish_reason": "stop"}
    ]
    # fakellm reports usage on plain calls: it is passed through, renamed to v4's generation_tokens.
    assert body["usage"] == {
        "prompt_tokens": upstream["usage"]["prompt_tokens"],
        "generation_tokens": upstream["usage"]["completion_tokens"],
        "total_tokens": upstream["usage"]["total_tokens"],
    }
    assert body["usage"]["generation_tokens"] > 0

    [log] = project_logs(server.database, project)
    assert log["id"] == item["id"]
    assert (log["status"], log["output"], log["finish_reason"]) == ("complete", raw.strip(), "stop")
    assert log["prompt_tokens"] == upstream["usage"]["prompt_tokens"]
    assert log["output_tokens"] == upstream["usage"]["completion_tokens"]
    stored = payload(server.database, log)
    assert stored["provider_request"] == body["provider_request"]
    assert stored["provider_responses"] == body["provider_responses"]


def test_provider_request_is_exactly_what_fakellm_received(client: httpx.Client) -> None:
    """An unmatched request is answered with a hash of the body fakellm parsed: it must hash to ours."""
    body = chat_body(
        unique("fk-echo"),
        "no rule matches this one",
        model_config={"temperature": 0.3, "max_tokens": 50, "stop": ["\n\n"], "other": {"logit_bias": {}}},
        user="alice",
        seed=7,
    )
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    sent = response.json()["provider_request"]
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 50
    assert sent["stop"] == ["\n\n"]
    assert sent["user"] == "alice"
    assert sent["seed"] == 7
    assert sent["logit_bias"] == {}
    assert response.json()["data"][0]["raw_output"] == fingerprint(sent)


# -- streams --------------------------------------------------------------------------------------------


def test_streamed_chat(client: httpx.Client, server: Server, fakellm: FakeLLM) -> None:
    project = unique("fk-stream")
    before = fakellm.calls("stream")
    events = sse_events(client.post("/chat", json=chat_body(project, "fk-stream please", stream=True)))
    assert fakellm.calls("stream") == before + 1

    *chunks, final = events
    words = STREAM_TEXT.split(" ")
    assert len(chunks) == len(words)  # one event per upstream content chunk
    log_id = final["data"][0]["id"]
    for chunk in chunks:
        [item] = chunk["data"]
        assert (item["id"], item["index"], item["finish_reason"]) == (log_id, 0, None)
        assert chunk["project_id"] == final["project_id"]
    assert "".join(chunk["data"][0]["output"] for chunk in chunks) == STREAM_TEXT

    [item] = final["data"]
    assert item["finish_reason"] == "stop"
    assert item["output_message"]["content"] == STREAM_TEXT
    # fakellm sends no usage in streams: loopgate counts the tokens itself.
    expected_prompt = tokens.count_messages([{"role": "user", "content": "fk-stream please"}])
    expected_output = tokens.count_output(STREAM_TEXT, None)
    assert final["usage"] == {
        "prompt_tokens": expected_prompt,
        "generation_tokens": expected_output,
        "total_tokens": expected_prompt + expected_output,
    }
    assert expected_output > 0

    [log] = project_logs(server.database, project)
    assert log["id"] == log_id
    assert (log["status"], log["output"], log["finish_reason"]) == ("complete", STREAM_TEXT, "stop")
    assert (log["prompt_tokens"], log["output_tokens"]) == (expected_prompt, expected_output)
    stored = payload(server.database, log)
    assert stored["provider_request"]["stream"] is True
    assert stored["provider_request"]["n"] == 1
    [assembled] = stored["provider_responses"]
    assert assembled["id"].startswith("chatcmpl-")
    assert assembled["choices"][0]["message"]["content"] == STREAM_TEXT
    assert assembled["choices"][0]["finish_reason"] == "stop"
    assert assembled["usage"] is None
    assert assembled["stream_chunks"] == len(words) + 2  # role chunk + words + finish chunk


def test_streamed_provider_request_is_exactly_what_fakellm_received(
    client: httpx.Client, server: Server
) -> None:
    project = unique("fk-echo-stream")
    events = sse_events(client.post("/chat", json=chat_body(project, "unmatched, streamed", stream=True)))
    text = "".join(event["data"][0]["output"] for event in events)
    [log] = project_logs(server.database, project)
    sent = payload(server.database, log)["provider_request"]
    assert sent["stream"] is True
    assert text == fingerprint(sent)
    assert log["output"] == text


# -- tool calls -----------------------------------------------------------------------------------------


def test_tool_call(client: httpx.Client, server: Server) -> None:
    project = unique("fk-tool")
    body = chat_body(project, "What is the weather in Paris?", model_config={"tools": [WEATHER_TOOL]})
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    sent = result["provider_request"]
    assert sent["tools"] == [{"type": "function", "function": WEATHER_TOOL}]
    assert sent["tool_choice"] == "auto"

    [item] = result["data"]
    assert item["finish_reason"] == "tool_call"
    [call] = item["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert item["output_message"]["tool_calls"] == item["tool_calls"]
    assert item["output_message"]["content"] is None
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}

    [log] = project_logs(server.database, project)
    assert (log["status"], log["finish_reason"]) == ("complete", "tool_call")
    assert payload(server.database, log)["output_message"]["tool_calls"] == item["tool_calls"]


def test_streamed_tool_call(client: httpx.Client, server: Server) -> None:
    project = unique("fk-tool-stream")
    body = chat_body(project, "Weather in Paris?", model_config={"tools": [WEATHER_TOOL]}, stream=True)
    *chunks, final = sse_events(client.post("/chat", json=body))
    assert all(chunk["data"][0]["finish_reason"] is None for chunk in chunks)

    [item] = final["data"]
    assert item["finish_reason"] == "tool_call"
    [call] = item["tool_calls"]  # fakellm streams the arguments in four pieces: they are reassembled
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert item["output_message"]["tool_calls"] == item["tool_calls"]
    assert item["tool_call"] == {"name": "get_weather", "arguments": call["function"]["arguments"]}

    [log] = project_logs(server.database, project)
    assert (log["id"], log["status"], log["finish_reason"]) == (item["id"], "complete", "tool_call")
    stored = payload(server.database, log)
    assert stored["output_message"]["tool_calls"] == item["tool_calls"]
    assert stored["provider_responses"][0]["choices"][0]["message"]["tool_calls"] == item["tool_calls"]


# -- faults ---------------------------------------------------------------------------------------------


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
def test_upstream_fault_is_mapped_and_logged(
    client: httpx.Client,
    server: Server,
    fakellm: FakeLLM,
    marker: str,
    status: int,
    error_type: str,
    message: str,
) -> None:
    project = unique(marker)
    rule = marker.removeprefix("fk-").replace("-", "_")
    before = fakellm.calls(rule)
    response = client.post("/chat", json=chat_body(project, f"{marker} now"))
    assert fakellm.calls(rule) == before + 1
    assert_provider_error(response, status, error_type, message)

    [log] = project_logs(server.database, project)
    assert log["status"] == "error"
    assert log["error"] == f"OpenAI: {message}"
    assert log["output"] is None
    assert log["finish_reason"] is None


# -- num_samples against an upstream that ignores n -----------------------------------------------------


def test_num_samples_topped_up_when_n_ignored(fakellm_servers: dict[str, Server], fakellm: FakeLLM) -> None:
    fresh_server = fakellm_servers["top-up"]
    with fresh_server.client() as client:
        # First request: n=2 is asked for, fakellm answers one choice, one more call fills the gap.
        project = unique("fk-samples")
        before = fakellm.calls("samples")
        response = client.post("/chat", json=chat_body(project, "fk-samples first", num_samples=2))
        assert response.status_code == 200, response.text
        body = response.json()
        assert fakellm.calls("samples") == before + 2
        assert body["num_samples"] == 2
        assert [item["index"] for item in body["data"]] == [0, 1]
        assert len({item["id"] for item in body["data"]}) == 2
        assert all(item["raw_output"] == "One sample of several." for item in body["data"])
        assert all(item["finish_reason"] == "stop" for item in body["data"])
        assert body["provider_request"]["n"] == 2
        assert len(body["provider_responses"]) == 2
        usages = [r["usage"] for r in body["provider_responses"]]
        assert body["usage"]["prompt_tokens"] == usages[0]["prompt_tokens"]
        assert body["usage"]["generation_tokens"] == sum(u["completion_tokens"] for u in usages)
        logs = project_logs(fresh_server.database, project)
        assert [(log["sample_index"], log["status"]) for log in logs] == [(0, "complete"), (1, "complete")]
        assert {log["id"] for log in logs} == {item["id"] for item in body["data"]}

        # Second request: the upstream is known to be single-choice, so two n=1 calls go out at once.
        before = fakellm.calls("samples")
        response = client.post("/chat", json=chat_body(project, "fk-samples again", num_samples=2))
        assert response.status_code == 200, response.text
        body = response.json()
        assert fakellm.calls("samples") == before + 2
        assert body["provider_request"]["n"] == 1
        assert [item["index"] for item in body["data"]] == [0, 1]
        assert len(project_logs(fresh_server.database, project)) == 4


def _assert_two_streamed_samples(events: list[dict[str, Any]], text: str) -> list[str]:
    grouped = by_index(events)
    assert sorted(grouped) == [0, 1]
    ids = []
    for index in (0, 1):
        *chunks, final = grouped[index]
        assert "".join(chunk["data"][0]["output"] for chunk in chunks) == text
        assert all(chunk["data"][0]["finish_reason"] is None for chunk in chunks)
        assert final["data"][0]["finish_reason"] == "stop"
        assert final["data"][0]["output_message"]["content"] == text
        assert {event["data"][0]["id"] for event in grouped[index]} == {final["data"][0]["id"]}
        ids.append(final["data"][0]["id"])
    assert ids[0] != ids[1]
    return ids


def test_streamed_num_samples_topped_up_when_n_ignored(
    fakellm_servers: dict[str, Server], fakellm: FakeLLM
) -> None:
    fresh_server = fakellm_servers["top-up-stream"]
    text = "One sample of several."
    with fresh_server.client() as client:
        project = unique("fk-samples-stream")
        before = fakellm.calls("samples")
        body = chat_body(project, "fk-samples streamed", num_samples=2, stream=True)
        ids = _assert_two_streamed_samples(sse_events(client.post("/chat", json=body)), text)
        assert fakellm.calls("samples") == before + 2
        logs = project_logs(fresh_server.database, project)
        assert [(log["id"], log["sample_index"]) for log in logs] == [(ids[0], 0), (ids[1], 1)]
        assert all((log["status"], log["output"]) == ("complete", text) for log in logs)
        stored = payload(fresh_server.database, logs[0])
        assert stored["provider_request"]["n"] == 2
        assert len(stored["provider_responses"]) == 2

        # Known single-choice now: two concurrent n=1 streams, merged.
        before = fakellm.calls("samples")
        project = unique("fk-samples-stream")
        body = chat_body(project, "fk-samples streamed again", num_samples=2, stream=True)
        _assert_two_streamed_samples(sse_events(client.post("/chat", json=body)), text)
        assert fakellm.calls("samples") == before + 2
        logs = project_logs(fresh_server.database, project)
        assert payload(fresh_server.database, logs[0])["provider_request"]["n"] == 1


# -- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_missing_key_is_400_naming_both_sources(client: httpx.Client, fakellm: FakeLLM, stream: bool) -> None:
    before = fakellm.total()
    response = client.post("/chat", json=chat_body(unique("fk-nokey"), "fk-plain", key=None, stream=stream))
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert (detail["type"], detail["code"], detail["origin"]) == ("bad_request_error", 400, "OpenAI")
    assert "provider_api_keys.openai" in detail["message"]
    assert "LOOPGATE_OPENAI_API_KEY" in detail["message"]
    assert fakellm.total() == before  # nothing was sent upstream


def test_provider_key_never_stored(client: httpx.Client, server: Server) -> None:
    key = f"sk-never-stored-{uuid.uuid4().hex}"
    project = unique("fk-secret")
    tool = {"tools": [WEATHER_TOOL]}
    requests = [
        chat_body(project, "fk-secret plain", key=key),
        chat_body(project, "fk-secret streamed", key=key, stream=True),
        chat_body(project, "fk-secret tools", key=key, model_config=tool),
        chat_body(project, "fk-secret samples", key=key, num_samples=2, stream=True),
        chat_body(project, "fk-fault-429 fk-secret", key=key),
        chat_body(project, "fk-fault-500 fk-secret", key=key, stream=True),  # fakellm streams an echo
    ]
    for body in requests:
        response = client.post("/chat", json=body)
        assert response.status_code in (200, 429), response.text
        assert key not in response.text
    assert len(project_logs(server.database, project)) == 7

    files = sorted(server.database.parent.glob(server.database.name + "*"))
    assert server.database in files
    assert server.database.with_name(server.database.name + "-wal") in files
    contents = b"".join(path.read_bytes() for path in files)
    assert project.encode() in contents  # the search does see what was written
    assert SECRET_KEY.encode() not in contents
    assert key.encode() not in contents
    assert server.log_path is not None
    assert key.encode() not in server.log_path.read_bytes()


# -- an upstream of our own, for what fakellm cannot express ----------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON body, or a list of SSE payloads (dicts or raw strings) for a stream
    headers: dict[str, str] = field(default_factory=dict)


Script = Callable[[dict[str, Any]], Reply]


class Upstream:
    """A scripted OpenAI-shaped upstream. Each test registers a reply under a marker word; a request whose
    last message contains the marker gets it. Every request is recorded with its headers."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = str(body["messages"][-1].get("content"))
                marker = next((m for m in upstream.scripts if m in text), "")
                upstream.received.append((marker, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = upstream.scripts[marker](body) if marker else Reply(404, {"error": "no script"})
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if isinstance(reply.body, list):
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for item in reply.body:
                        data = item if isinstance(item, str) else json.dumps(item)
                        self.wfile.write(f"data: {data}\n\n".encode())
                        self.wfile.flush()
                    return
                raw = json.dumps(reply.body).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/v1"

    def calls(self, marker: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(headers, body) for m, headers, body in self.received if m == marker]

    def script(self, reply: Reply | Script) -> str:
        marker = unique("own")
        self.scripts[marker] = reply if callable(reply) else (lambda _body: reply)
        return marker


def completion(*contents: str, usage: dict[str, int] | None = None, **choice_extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-own",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                **choice_extra,
            }
            for i, text in enumerate(contents)
        ],
        **({"usage": usage} if usage else {}),
    }


def chunk(index: int = 0, text: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "chatcmpl-own",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **extra,
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    instance = Upstream()
    instance.thread.start()
    yield instance
    instance.http.shutdown()
    instance.http.server_close()


@pytest.fixture(scope="module")
def own_servers(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[dict[str, Server]]:
    """loopgate -> our upstream, with a server-side fallback key."""
    names = ["main", "top-up"]
    with loopgates(
        tmp_path_factory, upstream.url, names, LOOPGATE_OPENAI_API_KEY="sk-server-fallback"
    ) as servers:
        yield servers


@pytest.fixture(scope="module")
def own(own_servers: dict[str, Server]) -> Server:
    """No test on this one makes the adapter learn that its upstream is single-choice: every scripted reply
    has as many choices as asked for (test_own_n_still_honoured_after_failures checks it)."""
    return own_servers["main"]


@pytest.fixture
def own_client(own: Server) -> Iterator[httpx.Client]:
    with own.client() as http:
        yield http


LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.01,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.01}],
        },
        {"token": "!", "logprob": -0.5, "bytes": [33], "top_logprobs": [{"token": "!", "logprob": -0.5}]},
    ]
}


def test_own_keys_sent_as_bearer(own_client: httpx.Client, upstream: Upstream) -> None:
    marker = upstream.script(Reply(body=completion("ok")))
    assert own_client.post("/chat", json=chat_body(unique("own"), marker)).status_code == 200
    assert own_client.post("/chat", json=chat_body(unique("own"), marker, key=None)).status_code == 200
    [(with_key, _), (fallback, _)] = upstream.calls(marker)
    assert with_key["authorization"] == f"Bearer {SECRET_KEY}"
    assert fallback["authorization"] == "Bearer sk-server-fallback"
    assert with_key["content-type"] == "application/json"


def test_own_logprobs_passed_through(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    marker = upstream.script(Reply(body=completion("Hi!", logprobs=LOGPROBS)))
    project = unique("own-logprobs")
    body = chat_body(project, marker, model_config={"other": {"logprobs": True, "top_logprobs": 1}})
    response = own_client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    [(_, sent)] = upstream.calls(marker)
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 1)
    assert response.json()["provider_request"] == sent
    assert response.json()["provider_responses"][0]["choices"][0]["logprobs"] == LOGPROBS
    [log] = project_logs(own.database, project)
    assert payload(own.database, log)["logprobs"] == LOGPROBS


def test_own_usage_reported(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    usage = {"prompt_tokens": 111, "completion_tokens": 22, "total_tokens": 133}
    marker = upstream.script(Reply(body=completion("Counted upstream.", usage=usage)))
    project = unique("own-usage")
    response = own_client.post("/chat", json=chat_body(project, marker))
    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {"prompt_tokens": 111, "generation_tokens": 22, "total_tokens": 133}
    [log] = project_logs(own.database, project)
    assert (log["prompt_tokens"], log["output_tokens"]) == (111, 22)


def test_own_streamed_usage_reported(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    usage = {"prompt_tokens": 111, "completion_tokens": 22, "total_tokens": 133}
    final_usage = {"id": "chatcmpl-own", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    marker = upstream.script(Reply(body=[chunk(text="Counted"), chunk(finish="stop"), final_usage, "[DONE]"]))
    project = unique("own-usage-stream")
    events = sse_events(own_client.post("/chat", json=chat_body(project, marker, stream=True)))
    assert events[-1]["usage"] == {"prompt_tokens": 111, "generation_tokens": 22, "total_tokens": 133}
    assert events[-1]["data"][0]["finish_reason"] == "stop"
    [log] = project_logs(own.database, project)
    assert log["prompt_tokens"] == 111
    assert payload(own.database, log)["provider_responses"][0]["usage"] == usage


def test_own_n_honoured_natively(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    marker = upstream.script(
        lambda body: Reply(body=completion(*(f"take {i}" for i in range(body["n"])), usage=usage))
    )
    project = unique("own-n")
    response = own_client.post("/chat", json=chat_body(project, marker, num_samples=3))
    assert response.status_code == 200, response.text
    body = response.json()
    [(_, sent)] = upstream.calls(marker)  # one call did it all
    assert sent["n"] == 3
    assert body["provider_request"] == sent
    assert [(item["index"], item["raw_output"]) for item in body["data"]] == [
        (0, "take 0"),
        (1, "take 1"),
        (2, "take 2"),
    ]
    assert body["usage"] == {"prompt_tokens": 10, "generation_tokens": 6, "total_tokens": 16}
    assert [log["sample_index"] for log in project_logs(own.database, project)] == [0, 1, 2]


def test_own_streamed_n_honoured_natively(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    events_out: list[Any] = []
    for word in ("a", " b", " c"):
        events_out += [chunk(0, f"{word} zero"), chunk(1, f"{word} one")]
    events_out += [chunk(1, finish="stop"), chunk(0, finish="stop"), "[DONE]"]
    marker = upstream.script(Reply(body=events_out))
    project = unique("own-n-stream")
    events = sse_events(own_client.post("/chat", json=chat_body(project, marker, num_samples=2, stream=True)))
    [(_, sent)] = upstream.calls(marker)
    assert (sent["n"], sent["stream"]) == (2, True)
    grouped = by_index(events)
    assert sorted(grouped) == [0, 1]
    for index, name in ((0, "zero"), (1, "one")):
        *chunks, final = grouped[index]
        assert "".join(c["data"][0]["output"] for c in chunks) == f"a {name} b {name} c {name}"
        assert final["data"][0]["finish_reason"] == "stop"
    logs = project_logs(own.database, project)
    assert [(log["sample_index"], log["output"]) for log in logs] == [
        (0, "a zero b zero c zero"),
        (1, "a one b one c one"),
    ]


RATE_LIMITED = {"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}}


def test_own_rate_limit_mapped(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    marker = upstream.script(Reply(429, RATE_LIMITED, {"Retry-After": "7", "x-request-id": "req_abc"}))
    project = unique("own-429")
    response = own_client.post("/chat", json=chat_body(project, marker))
    assert_provider_error(response, 429, "rate_limit_error", "Slow down")
    assert len(upstream.calls(marker)) == 1  # retries are off on this server
    [log] = project_logs(own.database, project)
    assert (log["status"], log["error"]) == ("error", "OpenAI: Slow down")


def test_own_retry_after_reaches_the_client(own_client: httpx.Client, upstream: Upstream) -> None:
    marker = upstream.script(Reply(429, RATE_LIMITED, {"Retry-After": "7"}))
    response = own_client.post("/chat", json=chat_body(unique("own-429"), marker))
    assert response.status_code == 429
    assert response.headers.get("retry-after") == "7"


async def test_adapter_keeps_retry_after_and_upstream_body(upstream: Upstream) -> None:
    error = RATE_LIMITED
    marker = upstream.script(
        Reply(429, error, {"Retry-After": "7", "x-request-id": "req_abc", "x-other": "1"})
    )
    http = UpstreamHTTP(connect_timeout=5, total_timeout=10)
    adapter = OpenAIChatAdapter(
        name="openai",
        display_name="OpenAI",
        key_field="openai",
        key_variable="LOOPGATE_OPENAI_API_KEY",
        base_url=upstream.url,
        default_api_key="sk-x",
        http=http,
    )
    call = GenerationCall(model="gpt-4o", messages=[{"role": "user", "content": marker}])
    try:
        for attempt in (adapter.generate(call), anext(adapter.stream(call))):
            with pytest.raises(UpstreamStatusError) as caught:
                await attempt
            assert caught.value.status_code == 429
            assert caught.value.retry_after == "7"
            assert caught.value.headers == {"retry-after": "7", "x-request-id": "req_abc"}
            assert caught.value.upstream_body == error
    finally:
        await http.close()


def test_own_streamed_fault_before_first_token_keeps_status(
    own_client: httpx.Client, own: Server, upstream: Upstream
) -> None:
    marker = upstream.script(Reply(503, {"error": {"message": "Overloaded"}}))
    project = unique("own-503-stream")
    response = own_client.post("/chat", json=chat_body(project, marker, stream=True))
    assert_provider_error(response, 503, "service_unavailable_error", "Overloaded")
    [log] = project_logs(own.database, project)
    assert (log["status"], log["error"]) == ("error", "OpenAI: Overloaded")


def test_own_error_event_mid_stream(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    """OpenAI (and vLLM) report a failure after the 200 as a ``data: {"error": ...}`` event."""
    failure = {"error": {"message": "The model crashed mid-answer", "type": "server_error", "code": None}}
    marker = upstream.script(Reply(body=[chunk(text="Half an"), chunk(text=" answer"), failure]))
    project = unique("own-midstream")
    *chunks, last = sse_events(own_client.post("/chat", json=chat_body(project, marker, stream=True)))
    assert "".join(c["data"][0]["output"] for c in chunks) == "Half an answer"
    assert all(c["data"][0]["finish_reason"] is None for c in chunks)
    assert last == {
        "detail": {
            "type": "bad_gateway_error",
            "message": "The model crashed mid-answer",
            "code": 502,
            "origin": "OpenAI",
        }
    }
    [log] = eventual_logs(own.database, project)
    assert log["status"] == "error"
    assert log["error"] == "OpenAI: The model crashed mid-answer"
    assert log["output"] == "Half an answer"


def test_own_malformed_chunk_mid_stream(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    marker = upstream.script(Reply(body=[chunk(text="Fine so far"), "{not json"]))
    project = unique("own-badchunk")
    *chunks, last = sse_events(own_client.post("/chat", json=chat_body(project, marker, stream=True)))
    assert [c["data"][0]["output"] for c in chunks] == ["Fine so far"]
    assert last == {
        "detail": {
            "type": "bad_gateway_error",
            "message": "OpenAI sent a body that is not a JSON object",
            "code": 502,
            "origin": "OpenAI",
        }
    }
    [log] = eventual_logs(own.database, project)
    assert (log["status"], log["output"]) == ("error", "Fine so far")


def test_own_long_stream_line(own_client: httpx.Client, own: Server, upstream: Upstream) -> None:
    """Some compatible servers send a whole answer in one chunk; a line far over 64 KiB must still parse."""
    text = "word " * 60_000  # 300 KB in one SSE line
    marker = upstream.script(Reply(body=[chunk(text=text), chunk(finish="stop"), "[DONE]"]))
    project = unique("own-longline")
    events = sse_events(own_client.post("/chat", json=chat_body(project, marker, stream=True)))
    assert "".join(e["data"][0]["output"] for e in events) == text
    assert events[-1]["data"][0]["finish_reason"] == "stop"
    [log] = project_logs(own.database, project)
    assert (log["status"], log["output"]) == ("complete", text.strip())


@pytest.mark.parametrize("stream", [False, True])
def test_own_error_body_with_status_200(
    own_client: httpx.Client, own: Server, upstream: Upstream, stream: bool
) -> None:
    """Some gateways (OpenRouter, ...) answer 200 with an error body: an error, not an answer to top up."""
    failure = {"error": {"message": "Provider returned error", "code": 502}}
    marker = upstream.script(Reply(body=[failure] if stream else failure))
    project = unique("own-200-error")
    response = own_client.post("/chat", json=chat_body(project, marker, num_samples=2, stream=stream))
    assert_provider_error(response, 502, "bad_gateway_error", "Provider returned error")
    assert len(upstream.calls(marker)) == 1
    [log] = project_logs(own.database, project)
    assert (log["status"], log["error"]) == ("error", "OpenAI: Provider returned error")


@pytest.mark.parametrize("stream", [False, True])
def test_own_no_choices_is_an_error_not_a_top_up(
    own_client: httpx.Client, own: Server, upstream: Upstream, stream: bool
) -> None:
    marker = upstream.script(Reply(body=["[DONE]"] if stream else completion()))
    project = unique("own-empty")
    response = own_client.post("/chat", json=chat_body(project, marker, num_samples=2, stream=stream))
    assert_provider_error(response, 502, "bad_gateway_error", "OpenAI returned no choices")
    assert len(upstream.calls(marker)) == 1
    [log] = project_logs(own.database, project)
    assert log["status"] == "error"


def test_own_n_still_honoured_after_failures(own_client: httpx.Client, upstream: Upstream) -> None:
    """The failures above must not have taught the adapter that its upstream ignores n."""
    marker = upstream.script(lambda body: Reply(body=completion(*(["x"] * body["n"]))))
    response = own_client.post("/chat", json=chat_body(unique("own-n"), marker, num_samples=2))
    assert response.status_code == 200, response.text
    [(_, sent)] = upstream.calls(marker)
    assert sent["n"] == 2


def test_own_streamed_top_up_counts_every_calls_usage(
    own_servers: dict[str, Server], upstream: Upstream
) -> None:
    """An upstream that ignores n but reports usage in streams: the usage of the extra call counts too."""
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    tail = {"id": "chatcmpl-own", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    marker = upstream.script(Reply(body=[chunk(text="one two"), chunk(finish="stop"), tail, "[DONE]"]))
    with own_servers["top-up"].client() as client:
        body = chat_body(unique("own-topup"), marker, num_samples=2, stream=True)
        events = sse_events(client.post("/chat", json=body))
    assert [call["n"] for _, call in upstream.calls(marker)] == [2, 1]
    finals = [event for event in events if event["data"][0]["finish_reason"]]
    assert sorted(event["data"][0]["index"] for event in finals) == [0, 1]
    assert finals[-1]["usage"] == {"prompt_tokens": 10, "generation_tokens": 6, "total_tokens": 16}
