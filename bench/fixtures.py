"""What the benchmark sends and what its upstream answers: the fixed OpenAI-shaped bodies nginx serves,
the nginx configuration, and the request bodies for both sides of the comparison."""

import json
import os
from pathlib import Path
from typing import Any

import loadgen

BENCH = Path(__file__).resolve().parent
STREAM_KEY = "sk-bench-stream"
PLAIN_KEY = "sk-bench"
MODEL = "gpt-4o-mini"
LOOPGATE = "loopgate"  # the target name of POST /v4/chat
DOOR = "openai-door"  # and of loopgate's OpenAI-compatible POST /v1/chat/completions
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")


# -- the upstream's fixed answers ------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def completion_body() -> str:
    return _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
            "system_fingerprint": "fp_bench",
        }
    )


def stream_body() -> str:
    head = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice]}

    tokens = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": token}) for token in tokens]
    events.append(chunk({}, "stop"))
    events.append({**head, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 9}})
    return "".join(f"data: {_dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def _nginx_string(text: str) -> str:
    if "$" in text:
        raise ValueError("nginx would read '$' as a variable")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _answer(text: str, delay_ms: float) -> str:
    if delay_ms <= 0:
        return f"            return 200 {_nginx_string(text)};"
    return f"            echo_sleep {delay_ms / 1000:.3f};\n            echo -n {_nginx_string(text)};"


def nginx_config(directory: Path, port: int, *, workers: int, delay_ms: float) -> str:
    template = (BENCH / "nginx.conf.in").read_text()
    values = {
        "@LOAD_MODULE@": f"load_module {ECHO_MODULE};" if delay_ms > 0 else "",
        "@WORKERS@": str(workers),
        "@DIR@": str(directory),
        "@USER@": "user root root;" if os.geteuid() == 0 else "",
        "@PORT@": str(port),
        "@STREAM_KEY@": STREAM_KEY,
        "@JSON_ANSWER@": _answer(completion_body(), delay_ms),
        "@SSE_ANSWER@": _answer(stream_body(), delay_ms),
    }
    for name, value in values.items():
        template = template.replace(name, value)
    return template


def loopgate_env(database: Path, upstream_port: int, **settings: str) -> dict[str, str]:
    """The environment loopgate runs in: this one without its LOOPGATE_* variables, then the benchmark's
    database, the upstream as provider openai's base URL, and ``settings`` (LOOPGATE_ names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")}
    env.update(
        LOOPGATE_DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        LOOPGATE_OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        LOOPGATE_LOG_LEVEL="warning",
        **settings,
    )
    return env


# -- the requests ----------------------------------------------------------------------------------------


def direct_body(*, stream: bool, system_chars: int) -> bytes:
    messages = _messages(system_chars)
    return _dumps({"model": MODEL, "messages": messages, "stream": stream}).encode()


def peer_body(model: str, *, stream: bool, system_chars: int) -> bytes:
    """The direct request with another model name (a peer gateway's name for the upstream model)."""
    return _dumps({"model": model, "messages": _messages(system_chars), "stream": stream}).encode()


def door_body(*, stream: bool, system_chars: int) -> bytes:
    """The direct request, as loopgate's OpenAI-compatible door takes it (``<provider>/<model>``)."""
    return peer_body(f"openai/{MODEL}", stream=stream, system_chars=system_chars)


def loopgate_body(*, stream: bool, system_chars: int) -> bytes:
    body: dict[str, Any] = {
        "project": "bench",
        "model_config": {"provider": "openai", "model": MODEL},
        "messages": _messages(system_chars),
        "provider_api_keys": {"openai": STREAM_KEY if stream else PLAIN_KEY},
    }
    if stream:
        body["stream"] = True
    return _dumps(body).encode()


def _messages(system_chars: int) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": "hello"}]
    if system_chars > 0:
        prompt = ("You are a helpful assistant for the loopgate benchmark. " * (system_chars // 56 + 1))[
            :system_chars
        ]
        messages.insert(0, {"role": "system", "content": prompt})
    return messages


class Target:
    """One side of the comparison: where requests go and with which headers. ``upstream_key`` names the
    header that carries the upstream's key (nginx tells a stream request by its key), with its prefix."""

    def __init__(
        self,
        name: str,
        port: int,
        path: str,
        headers: dict[str, str],
        bodies: dict[bool, bytes],
        *,
        upstream_key: tuple[str, str] | None = None,
    ):
        self.name = name
        self.port = port
        self.path = path
        self.headers = headers
        self.bodies = bodies
        self.upstream_key = upstream_key

    def headers_for(self, *, stream: bool) -> dict[str, str]:
        headers = dict(self.headers)
        if self.upstream_key is not None:
            name, prefix = self.upstream_key
            headers[name] = prefix + (STREAM_KEY if stream else PLAIN_KEY)
        return headers

    def raw(self, *, stream: bool) -> bytes:
        headers = {"Content-Type": "application/json", **self.headers_for(stream=stream)}
        return loadgen.build_request("127.0.0.1", self.port, self.path, self.bodies[stream], headers)

    def wrk_headers(self, *, stream: bool) -> str:
        return "".join(f"{name}: {value}\n" for name, value in self.headers_for(stream=stream).items())
