"""Provider ``replicate``: the predictions adapter end to end through a real ``loopgate serve``, against a
loopback fake of Replicate's documented wire format: create (``POST /v1/models/{owner}/{name}/predictions``
or ``POST /v1/predictions`` with a version), poll ``urls.get``, stream ``urls.stream`` as server-sent events
(``output`` / ``done`` / ``error``)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server, serving
from tests.helpers import db_rows, sse_events, unique

pytestmark = pytest.mark.e2e

KEY = "r8_loopback_key"
MODEL = "meta/meta-llama-3-8b-instruct"


@dataclass
class Plan:
    """What the fake does with one prediction: the create answer, then one answer per poll, or a stream."""

    created: dict[str, Any] = field(default_factory=lambda: {"status": "starting"})
    polls: list[dict[str, Any]] = field(default_factory=list)
    frames: list[bytes] | None = None
    status: int = 201


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeReplicate:
    def __init__(self) -> None:
        self.plans: dict[str, Plan] = {}
        self.predictions: dict[str, tuple[str, Plan]] = {}
        self.received: dict[str, list[Received]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                marker = next(m for m in fake.plans if m in raw.decode())
                fake.record(marker, "POST", self.path, dict(self.headers), json.loads(raw))
                plan = fake.plans[marker]
                if plan.status >= 400:
                    self.answer(plan.status, plan.created)
                    return
                prediction_id = uuid.uuid4().hex[:12]
                fake.predictions[prediction_id] = (marker, plan)
                self.answer(plan.status, fake.prediction(prediction_id, plan.created))

            def do_GET(self) -> None:
                kind, prediction_id = self.path.split("/")[-2:]
                marker, plan = fake.predictions[prediction_id]
                fake.record(marker, "GET", self.path, dict(self.headers), None)
                if kind == "stream":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for frame in plan.frames or ():
                        self.wfile.write(frame)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                self.answer(200, fake.prediction(prediction_id, plan.polls.pop(0)))

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def record(self, marker: str, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        self.received.setdefault(marker, []).append(Received(method, path, lowered, body))

    def prediction(self, prediction_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": prediction_id,
            "model": MODEL,
            "version": "dp-4d7c",
            "output": None,
            "error": None,
            "logs": "",
            "urls": {
                "get": f"{self.url}/v1/predictions/{prediction_id}",
                "cancel": f"{self.url}/v1/predictions/{prediction_id}/cancel",
                "stream": f"{self.url}/v1/stream/{prediction_id}",
            },
            **fields,
        }

    def script(self, plan: Plan) -> str:
        marker = f"rp-{uuid.uuid4().hex[:10]}"
        self.plans[marker] = plan
        return marker


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeReplicate]:
    fake = FakeReplicate()
    fake.thread.start()
    yield fake
    fake.http.shutdown()
    fake.http.server_close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, upstream: FakeReplicate) -> Iterator[dict[str, Server]]:
    keyed = make_server(
        tmp_path_factory.mktemp("replicate"),
        LOOPGATE_REPLICATE_BASE_URL=upstream.url,
        LOOPGATE_REPLICATE_API_KEY=KEY,
        LOOPGATE_REPLICATE_POLL_INTERVAL="0.01",
    )
    keyless = make_server(
        tmp_path_factory.mktemp("replicate-nokey"), LOOPGATE_REPLICATE_BASE_URL=upstream.url
    )
    with serving(keyed, keyless):
        yield {"keyed": keyed, "keyless": keyless}


@pytest.fixture
def client(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with servers["keyed"].client() as http:
        yield http


def body(messages: list[dict[str, Any]] | str, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    config = {"provider": "replicate", "model": model, **extra.pop("model_config", {})}
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"project": unique("replicate"), "model_config": config, "messages": messages, **extra}


def sse(*events: tuple[str, str]) -> list[bytes]:
    return [f"event: {name}\nid: {n}\ndata: {data}\n\n".encode() for n, (name, data) in enumerate(events)]


def test_sync_prediction(client: httpx.Client, upstream: FakeReplicate) -> None:
    metrics = {"predict_time": 0.4, "input_token_count": 21, "output_token_count": 3}
    marker = upstream.script(
        Plan({"status": "succeeded", "output": ["Hello", " there", "!"], "metrics": metrics})
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"hi {marker}"}]
    config = {"temperature": 0.5, "top_p": 0.9, "max_tokens": 64, "stop": ["END", "STOP"]}
    result = client.post("/chat", json=body(messages, model_config=config))
    assert result.status_code == 200, result.text
    [call] = upstream.received[marker]
    assert (call.method, call.path) == ("POST", f"/v1/models/{MODEL}/predictions")
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.headers["prefer"] == "wait"
    assert call.body == {
        "input": {
            "prompt": f"hi {marker}",
            "system_prompt": "Be brief.",
            "max_tokens": 64,
            "max_new_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": "END,STOP",
        }
    }
    answer = result.json()
    assert answer["provider_request"] == call.body
    assert answer["provider_responses"][0]["output"] == ["Hello", " there", "!"]
    [item] = answer["data"]
    assert (item["output"], item["finish_reason"]) == ("Hello there!", "stop")
    assert answer["usage"] == {"prompt_tokens": 21, "generation_tokens": 3, "total_tokens": 24}


def test_version_polled_until_succeeded(client: httpx.Client, upstream: FakeReplicate) -> None:
    polls = [{"status": "processing"}, {"status": "succeeded", "output": ["Four", "."]}]
    marker = upstream.script(Plan({"status": "starting"}, polls))
    messages = [
        {"role": "user", "content": f"2+2? {marker}"},
        {"role": "assistant", "content": "Let me think."},
        {"role": "user", "content": "Go on."},
    ]
    result = client.post("/chat", json=body(messages, model=f"{MODEL}:5a6809ca6288"))
    assert result.status_code == 200, result.text
    create, *gets = upstream.received[marker]
    assert (create.path, create.body["version"]) == ("/v1/predictions", "5a6809ca6288")
    assert create.body["input"]["prompt"] == (
        f"User: 2+2? {marker}\n\nAssistant: Let me think.\n\nUser: Go on.\n\nAssistant:"
    )
    assert [(g.method, g.path.split("/")[2]) for g in gets] == [("GET", "predictions")] * 2
    answer = result.json()
    assert answer["data"][0]["output"] == "Four."
    assert answer["provider_responses"][0]["status"] == "succeeded"
    assert answer["usage"]["generation_tokens"] > 0  # no metrics: counted by loopgate


def test_streamed(client: httpx.Client, servers: dict[str, Server], upstream: FakeReplicate) -> None:
    frames = sse(("output", "Once"), ("output", " upon"), ("output", " a time"), ("done", "{}"))
    marker = upstream.script(Plan(frames=frames))
    *deltas, final = sse_events(client.post("/chat", json=body(f"story {marker}", stream=True)).text)
    assert [d["data"][0]["output"] for d in deltas] == ["Once", " upon", " a time"]
    [item] = final["data"]
    assert (item["output_message"]["content"], item["finish_reason"]) == ("Once upon a time", "stop")
    create, stream = upstream.received[marker]
    assert create.body["stream"] is True
    assert "prefer" not in create.headers
    assert (stream.method, stream.path.split("/")[2]) == ("GET", "stream")
    assert stream.headers["accept"] == "text/event-stream"
    [log] = db_rows(servers["keyed"].database, "SELECT status FROM logs WHERE id = ?", item["id"])
    assert log["status"] == "complete"


def test_failed_prediction(client: httpx.Client, upstream: FakeReplicate) -> None:
    polls = [{"status": "failed", "error": "CUDA out of memory"}]
    marker = upstream.script(Plan({"status": "processing"}, polls))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 502, result.text
    detail = result.json()["detail"]
    assert (detail["origin"], detail["code"]) == ("Replicate", 502)
    assert "CUDA out of memory" in detail["message"]


def test_stream_error_event(client: httpx.Client, upstream: FakeReplicate) -> None:
    frames = sse(("output", "partial"), ("error", '{"detail": "model crashed"}'))
    marker = upstream.script(Plan(frames=frames))
    events = sse_events(client.post("/chat", json=body(marker, stream=True)).text)
    assert events[0]["data"][0]["output"] == "partial"
    assert "model crashed" in json.dumps(events[-1])


def test_create_refused(client: httpx.Client, upstream: FakeReplicate) -> None:
    refusal = {
        "title": "Invalid version or not permitted",
        "detail": "The specified version does not exist",
        "status": 422,
    }
    marker = upstream.script(Plan(refusal, status=422))
    result = client.post("/chat", json=body(marker))
    assert result.status_code == 422, result.text
    assert result.json()["detail"]["origin"] == "Replicate"
    assert result.json()["detail"]["message"] == refusal["detail"]


def test_a_model_is_two_encoded_path_segments(client: httpx.Client, upstream: FakeReplicate) -> None:
    """The call carries the server's key: a model cannot aim it at another path of the API."""
    for model in ("acme/x/../../../v1/trainings", "acme", "acme/", "../x", "acme/x/y"):
        marker = upstream.script(Plan({"status": "succeeded", "output": ["no"]}))
        refused = client.post("/chat", json=body(f"hi {marker}", model=model))
        assert refused.status_code == 422, (model, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", "model_config", "model"]
        assert upstream.received.get(marker, []) == []
    marker = upstream.script(Plan({"status": "succeeded", "output": ["ok"]}))
    odd = client.post("/chat", json=body(f"hi {marker}", model="acme/x?evil=1&#"))
    assert odd.status_code == 200, odd.text
    [call] = upstream.received[marker]
    assert call.path == "/v1/models/acme/x%3Fevil%3D1%26%23/predictions"


def test_missing_key(servers: dict[str, Server]) -> None:
    with servers["keyless"].client() as http:
        result = http.post("/chat", json=body("hello"))
    assert result.status_code == 400
    assert "LOOPGATE_REPLICATE_API_KEY" in result.json()["detail"]["message"]


def test_the_openai_doors_provider_key_reaches_replicate(
    servers: dict[str, Server], upstream: FakeReplicate
) -> None:
    """A v4 request cannot carry a Replicate key; the OpenAI-compatible door can (X-Provider-Api-Key), and
    on a server without one of its own that key is the one sent, for that call only."""
    server = servers["keyless"]
    marker = upstream.script(Plan({"status": "succeeded", "output": ["Hi", "!"]}))
    body = {"model": f"replicate/{MODEL}", "messages": [{"role": "user", "content": f"hi {marker}"}]}
    with httpx.Client(base_url=server.base, timeout=30) as http:
        headers = {"authorization": f"Bearer {server.api_key}"}
        missing = http.post("/v1/chat/completions", json=body, headers=headers)
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_provider_key"
        assert "X-Provider-Api-Key" in missing.json()["error"]["message"]
        assert "LOOPGATE_REPLICATE_API_KEY" in missing.json()["error"]["message"]
        answered = http.post(
            "/v1/chat/completions", json=body, headers={**headers, "x-provider-api-key": "r8_own"}
        )
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] == "Hi!"
    [call] = upstream.received[marker]
    assert call.headers["authorization"] == "Bearer r8_own"
