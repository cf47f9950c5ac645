"""The retry policy shared by the adapters (providers/retry.py): what is retried, how long it waits, and that
a stream is never retried once it has started. Adapters are driven directly against a loopback upstream with
tiny delays; one server test proves the LOOPGATE_PROVIDER_* settings reach the adapters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from loopgate.config import Settings
from loopgate.errors import UpstreamConnectionError, UpstreamStatusError
from loopgate.providers.anthropic_messages import AnthropicMessagesAdapter
from loopgate.providers.base import GenerationCall, StreamDelta, StreamEnd
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.http_client import ClientConnectionError, ClientPayloadError, ServerDisconnectedError
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.providers.retry import RetryPolicy

from .conftest import free_port, make_server
from .helpers import unique
from .loopback import Loopback, Reply, running, sse

FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=2.0)
RATE_LIMITED = {"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}}
SERVER_ERROR = {"error": {"message": "Internal error", "type": "server_error"}}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHTTP]:
    client = UpstreamHTTP(connect_timeout=2, total_timeout=10)
    yield client
    await client.close()


def openai(upstream: Loopback, http: UpstreamHTTP, policy: RetryPolicy = FAST) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(
        name="openai",
        display_name="OpenAI",
        key_field="openai",
        key_variable="LOOPGATE_OPENAI_API_KEY",
        base_url=f"{upstream.url}/v1",
        default_api_key="sk-test",
        http=http,
        retry=policy,
    )


def anthropic(upstream: Loopback, http: UpstreamHTTP, policy: RetryPolicy = FAST) -> AnthropicMessagesAdapter:
    return AnthropicMessagesAdapter(
        name="anthropic",
        display_name="Anthropic",
        key_field="anthropic",
        key_variable="LOOPGATE_ANTHROPIC_API_KEY",
        base_url=upstream.url,
        default_api_key="sk-ant-test",
        http=http,
        retry=policy,
    )


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-r",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def chunk(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_r",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }


class Sequence:
    """A script answering with ``replies`` in turn (the last one repeats), noting when each call came."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.times: list[float] = []

    def __call__(self, _body: dict[str, Any]) -> Reply:
        self.times.append(time.monotonic())
        return self.replies[min(len(self.times) - 1, len(self.replies) - 1)]


def call(marker: str) -> GenerationCall:
    return GenerationCall(model="m", messages=[{"role": "user", "content": marker}])


# -- the policy on its own ------------------------------------------------------------------------------


def status(code: int, retry_after: str | None = None) -> UpstreamStatusError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return UpstreamStatusError("x", origin="T", status_code=code, headers=headers)


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(code: int) -> None:
    delay = FAST.delay(0, status(code))
    assert delay is not None
    assert 0.005 <= delay <= 0.01  # base * 2**0 with jitter in [0.5, 1]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_final(code: int) -> None:
    assert FAST.delay(0, status(code)) is None


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=1.0, max_delay=5.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (6, 5.0)]:
        delays = [policy.delay(attempt, status(503)) for _ in range(50)]
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
    assert policy.delay(10, status(503)) is None


def test_retry_after_replaces_backoff_up_to_the_cap() -> None:
    assert FAST.delay(0, status(429, "1.5")) == 1.5
    assert FAST.delay(0, status(429, "0")) == 0
    assert FAST.delay(0, status(429, "30")) is None  # longer than max_delay: the client is told instead
    date = FAST.delay(0, status(429, "Wed, 21 Oct 2015 07:28:00 GMT"))  # not seconds: back off as usual
    assert date is not None
    assert date <= 0.01


def test_what_else_is_retried() -> None:
    assert FAST.delay(0, ServerDisconnectedError()) is not None
    assert FAST.delay(0, ClientConnectionError()) is not None
    assert FAST.delay(0, TimeoutError()) is None
    assert FAST.delay(0, ClientPayloadError()) is None
    assert FAST.delay(0, ValueError()) is None
    assert RetryPolicy(max_retries=0).delay(0, status(503)) is None


def test_policy_from_settings() -> None:
    settings = Settings(provider_max_retries=5, provider_retry_base_delay=0.2, provider_retry_max_delay=3)
    policy = RetryPolicy.from_settings(settings)
    assert (policy.max_retries, policy.base_delay, policy.max_delay) == (5, 0.2, 3.0)
    assert RetryPolicy.from_settings(Settings()) == RetryPolicy(max_retries=2, base_delay=0.5, max_delay=8.0)


# -- adapters against a loopback upstream ---------------------------------------------------------------


async def test_429_with_retry_after_then_200(upstream: Loopback, http: UpstreamHTTP) -> None:
    script = Sequence(Reply(429, RATE_LIMITED, headers={"Retry-After": "1"}), Reply(body=completion("ok")))
    marker = upstream.script(script)
    result = await openai(upstream, http).generate(call(marker))
    assert result.generations[0].raw_output == "ok"
    assert len(upstream.calls(marker)) == 2
    # Retry-After (1 s) was waited for, not the 10 ms backoff.
    assert 0.95 <= script.times[1] - script.times[0] < 1.9


async def test_500_twice_then_200(upstream: Loopback, http: UpstreamHTTP) -> None:
    marker = upstream.script(
        Sequence(Reply(500, SERVER_ERROR), Reply(502, "bad gateway"), Reply(body=completion("third")))
    )
    result = await openai(upstream, http).generate(call(marker))
    assert result.generations[0].raw_output == "third"
    assert len(upstream.calls(marker)) == 3
    assert result.responses == [completion("third")]  # failed attempts leave no trace in the log's responses


async def test_gives_up_after_max_retries(upstream: Loopback, http: UpstreamHTTP) -> None:
    marker = upstream.script(Reply(503, SERVER_ERROR, headers={"x-request-id": "req_1"}))
    with pytest.raises(UpstreamStatusError) as caught:
        await openai(upstream, http).generate(call(marker))
    assert (caught.value.status_code, caught.value.message) == (503, "Internal error")
    assert caught.value.headers == {"x-request-id": "req_1"}
    assert len(upstream.calls(marker)) == 3  # the call and two retries


async def test_retry_after_beyond_the_cap_goes_to_the_client(upstream: Loopback, http: UpstreamHTTP) -> None:
    marker = upstream.script(Reply(429, RATE_LIMITED, headers={"Retry-After": "60"}))
    with pytest.raises(UpstreamStatusError) as caught:
        await openai(upstream, http).generate(call(marker))
    assert (caught.value.status_code, caught.value.retry_after) == (429, "60")
    assert len(upstream.calls(marker)) == 1


async def test_client_error_not_retried(upstream: Loopback, http: UpstreamHTTP) -> None:
    marker = upstream.script(Reply(400, {"error": {"message": "Bad model"}}))
    with pytest.raises(UpstreamStatusError):
        await openai(upstream, http).generate(call(marker))
    assert len(upstream.calls(marker)) == 1


async def test_error_in_a_200_body_not_retried(upstream: Loopback, http: UpstreamHTTP) -> None:
    marker = upstream.script(Reply(body={"error": {"message": "Provider returned error", "code": 502}}))
    with pytest.raises(UpstreamStatusError):
        await openai(upstream, http).generate(call(marker))
    assert len(upstream.calls(marker)) == 1


async def test_connection_refused_is_retried(http: UpstreamHTTP) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=1.0, sleep=sleep)
    adapter = OpenAIChatAdapter(
        name="openai",
        display_name="OpenAI",
        key_field="openai",
        key_variable="LOOPGATE_OPENAI_API_KEY",
        base_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        default_api_key="sk-test",
        http=http,
        retry=policy,
    )
    with pytest.raises(UpstreamConnectionError):
        await adapter.generate(call("refused"))
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02


async def test_anthropic_529_then_200(upstream: Loopback, http: UpstreamHTTP) -> None:
    marker = upstream.script(Sequence(Reply(529, OVERLOADED), Reply(body=message("calm again"))))
    result = await anthropic(upstream, http).generate(call(marker))
    assert result.generations[0].raw_output == "calm again"
    assert len(upstream.calls(marker)) == 2


# -- streams --------------------------------------------------------------------------------------------


async def collect(events: AsyncIterator[Any]) -> tuple[str, StreamEnd]:
    text = ""
    async for event in events:
        if isinstance(event, StreamDelta):
            text += event.text
        else:
            return text, event
    raise AssertionError("the stream had no end")


async def drain(events: AsyncIterator[Any], received: list[str]) -> None:
    async for event in events:
        assert isinstance(event, StreamDelta)
        received.append(event.text)


async def test_stream_retried_before_it_starts(upstream: Loopback, http: UpstreamHTTP) -> None:
    frames = sse(chunk("Hello"), chunk(" again"), chunk(finish="stop"), "[DONE]")
    marker = upstream.script(
        Sequence(Reply(429, RATE_LIMITED, headers={"Retry-After": "0"}), Reply(frames=frames))
    )
    text, end = await collect(openai(upstream, http).stream(call(marker)))
    assert text == "Hello again"
    assert len(upstream.calls(marker)) == 2
    assert len(end.responses) == 1


async def test_openai_stream_failing_after_first_token_not_retried(
    upstream: Loopback, http: UpstreamHTTP
) -> None:
    frames = sse(chunk("Half"), {"error": {"message": "The model crashed", "type": "server_error"}})
    marker = upstream.script(Sequence(Reply(frames=frames), Reply(frames=sse(chunk("whole"), "[DONE]"))))
    received: list[str] = []
    with pytest.raises(UpstreamStatusError) as caught:
        await drain(openai(upstream, http).stream(call(marker)), received)
    assert received == ["Half"]
    assert (caught.value.status_code, caught.value.message) == (502, "The model crashed")
    assert len(upstream.calls(marker)) == 1


async def test_anthropic_overloaded_mid_stream_not_retried(upstream: Loopback, http: UpstreamHTTP) -> None:
    start = {"type": "message_start", "message": {**message(""), "content": [], "stop_reason": None}}
    frames = sse(
        start,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Partial"}},
        OVERLOADED,
        event_names=["message_start", "content_block_start", "content_block_delta", "error"],
    )
    marker = upstream.script(Reply(frames=frames))
    received: list[str] = []
    with pytest.raises(UpstreamStatusError) as caught:
        await drain(anthropic(upstream, http).stream(call(marker)), received)
    assert received == ["Partial"]
    assert (caught.value.status_code, caught.value.message) == (
        529,
        "Overloaded",
    )  # retryable, yet not retried
    assert len(upstream.calls(marker)) == 1


# -- settings reach the server's adapters ---------------------------------------------------------------


@pytest.mark.e2e
def test_server_retries_as_configured(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> None:
    server = make_server(
        tmp_path_factory.mktemp("retries"),
        LOOPGATE_OPENAI_BASE_URL=f"{upstream.url}/v1",
        LOOPGATE_OPENAI_API_KEY="sk-test",
        LOOPGATE_PROVIDER_MAX_RETRIES="1",
        LOOPGATE_PROVIDER_RETRY_BASE_DELAY="0.01",
    )
    server.start()
    try:
        with server.client() as client:
            recovered = upstream.script(
                Sequence(Reply(500, SERVER_ERROR), Reply(body=completion("recovered")))
            )
            failing = upstream.script(Reply(503, SERVER_ERROR))
            config = {"provider": "openai", "model": "gpt-4o"}
            for marker in (recovered, failing):
                body = {
                    "project": unique("retry"),
                    "model_config": config,
                    "messages": [{"role": "user", "content": marker}],
                }
                response = client.post("/chat", json=body)
                if marker == recovered:
                    assert response.status_code == 200, response.text
                    assert response.json()["data"][0]["raw_output"] == "recovered"
                else:
                    assert response.status_code == 503, response.text
                    assert response.json()["detail"]["origin"] == "OpenAI"
            assert len(upstream.calls(recovered)) == 2
            assert len(upstream.calls(failing)) == 2  # max_retries=1
    finally:
        server.stop()
