"""The OpenAI adapter end to end against a tiny scripted upstream of our own, for what fakellm cannot
express (``test_openai_fakellm.py`` has the rest): it ignores ``n``, never sends logprobs, sends no usage
in streams, ignores ``status`` for streamed requests and sets no ``Retry-After``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopgate.errors import UpstreamStatusError
from loopgate.providers.base import GenerationCall
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter

from .conftest import Server, make_server
from .helpers import disk_full
from .openai_e2e import (
    SECRET_KEY,
    assert_provider_error,
    by_index,
    chat_body,
    eventual_logs,
    loopgates,
    payload,
    project_logs,
    sse_events,
    unique,
)

pytestmark = pytest.mark.e2e


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


def test_own_error_event_mid_stream_on_a_full_disk(
    own_client: httpx.Client, own: Server, upstream: Upstream
) -> None:
    """The provider's failure still reaches the client when its error log cannot be stored."""
    failure = {"error": {"message": "The model crashed mid-answer", "type": "server_error", "code": None}}
    marker = upstream.script(Reply(body=[chunk(text="Half an"), failure]))
    project = unique("own-midstream-full")
    # The project and its config exist (and are cached) before the disk fills: only the log is new.
    warm = upstream.script(Reply(body=[chunk(text="Fine.", finish="stop")]))
    sse_events(own_client.post("/chat", json=chat_body(project, warm, stream=True)))
    assert len(project_logs(own.database, project)) == 1
    assert own.process is not None
    with disk_full(own.process.pid):
        events = sse_events(own_client.post("/chat", json=chat_body(project, marker, stream=True)))
    assert events[-1]["detail"]["message"] == "The model crashed mid-answer"
    assert len(project_logs(own.database, project)) == 1  # the failed stream's log could not be stored


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_character_in_the_output_is_stored(tmp_path: Path, upstream: Upstream, backend: str) -> None:
    """Requests with a NUL are refused, but a provider may send one; PostgreSQL's text cannot hold it."""
    short, long = "a\x00b", "x" * 80 + "\x00"  # the long one is also stored as a blob (over 64 characters)
    marker = upstream.script(Reply(body=completion(short, long)))
    server = make_server(tmp_path, backend=backend, LOOPGATE_OPENAI_BASE_URL=upstream.url)
    server.start()
    try:
        with server.client() as client:
            body = chat_body(unique("nul-output"), marker, num_samples=2)
            body["provider_api_keys"] = {"openai": SECRET_KEY}
            answer = client.post("/chat", json=body)
            assert answer.status_code == 200, answer.text
            assert [item["output"] for item in answer.json()["data"]] == [short, long]  # as sent
            stored = [client.get(f"/logs/{item['id']}").json()["output"] for item in answer.json()["data"]]
    finally:
        server.stop()
    if backend == "sqlite":
        assert stored == [short, long]
    else:
        assert stored == ["a\ufffdb", "x" * 80 + "\ufffd"]


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
