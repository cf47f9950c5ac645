"""The anthropic and openai provider adapters driven end to end by the official humanloop SDK 0.7.35:
SDK -> ``loopgate serve`` -> fakellm, which answers both the Messages API (``/v1/messages``) and the Chat
Completions API (``/v1/chat/completions``). The server holds no provider key: each request brings its own
through the SDK's ``anthropic_api_key`` / ``openai_api_key`` configuration.

The scenarios in ``sdk_providers_scenarios.py`` run as one subprocess with the SDK's interpreter and record
what the SDK handed back; these tests assert on it, on the stored logs, and on fakellm's own call counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_scenarios
from tests.e2e.test_sdk_chat import LOG_ID, log_rows
from tests.openai_e2e import loopgates
from tests.test_openai_fakellm import (  # the module-scoped fakellm fixture comes along with its helpers
    STREAM_TEXT,
    WEATHER_ARGS,
    FakeLLM,
    fakellm,  # noqa: F401
)

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("sdk_providers_scenarios.py")
PROVIDERS = ["anthropic", "openai"]
PLAIN_TEXT = "  Bonjour from fakellm: plain and simple.  "  # the `plain` rule
SAMPLE_TEXT = "One sample of several."  # the `samples` rule
ORIGINS = {"anthropic": "Anthropic", "openai": "OpenAI"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fakellm: FakeLLM,  # noqa: F811
) -> Iterator[Server]:
    """A loopgate server with both upstreams pointed at fakellm and no server-side keys, on each backend."""
    with loopgates(
        tmp_path_factory,
        f"{fakellm.url}/v1",
        ["providers"],
        LOOPGATE_ANTHROPIC_BASE_URL=fakellm.url,
        backend=request.param,
    ) as servers:
        yield servers["providers"]


@pytest.fixture(scope="module")
def sdk(gateway: Server, fakellm: FakeLLM) -> dict[str, Any]:  # noqa: F811
    before = {rule: fakellm.calls(rule) for rule in ("plain", "stream", "samples", "weather_tool")}
    results = run_scenarios(SCRIPT, gateway, *PROVIDERS)
    results["_upstream_calls"] = {rule: fakellm.calls(rule) - count for rule, count in before.items()}
    return results


def stored(server: Server, log_id: str) -> dict[str, Any]:
    """The log row, waiting briefly: a stream's log is written once the stream has ended."""
    for _ in range(50):
        rows = log_rows(server, log_id)
        if log_id in rows:
            return rows[log_id]
        time.sleep(0.1)
    raise AssertionError(f"log {log_id} was never stored")


def by_index(chunks: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        grouped.setdefault(chunk["index"], []).append(chunk)
    return grouped


def reported_usage(provider: str, response: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens as the upstream itself reported them."""
    usage = response["usage"]
    if provider == "anthropic":
        return usage["input_tokens"], usage["output_tokens"]
    return usage["prompt_tokens"], usage["completion_tokens"]


def test_upstream_calls_per_rule(sdk: dict[str, Any]) -> None:
    # Per provider: one plain call, one stream, two samples twice (plain and streamed: one call per sample,
    # since neither the Messages API nor fakellm's OpenAI side gives several choices in one call), one tool
    # call. Retries are off, so these are exact.
    assert sdk["_upstream_calls"] == {"plain": 2, "stream": 2, "samples": 8, "weather_tool": 2}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_chat(sdk: dict[str, Any], gateway: Server, provider: str) -> None:
    got = result(sdk, provider)
    plain, attributes = got["plain"], got["attributes"]
    (item,) = plain["data"]
    assert LOG_ID.match(item["id"])
    assert item["output"] == attributes["output"] == PLAIN_TEXT.strip()
    assert item["raw_output"] == PLAIN_TEXT
    assert item["finish_reason"] == attributes["finish_reason"] == "stop"
    assert item["output_message"]["role"] == "assistant"
    assert item["output_message"]["content"] == PLAIN_TEXT
    assert item["tool_calls"] is None

    (response,) = plain["provider_responses"]
    prompt, completion = reported_usage(provider, response)
    assert plain["usage"] == attributes["usage"]
    assert attributes["usage"] == {
        "prompt_tokens": prompt,
        "generation_tokens": completion,
        "total_tokens": prompt + completion,
    }
    assert completion > 0

    request = plain["provider_request"]
    if provider == "anthropic":  # the system message moved to Anthropic's top-level ``system``
        assert request["system"] == "You are a fox."
        assert request["messages"] == [{"role": "user", "content": "fk-plain hello"}]
        assert request["max_tokens"] == 200 and "stream" not in request
    else:
        assert [m["content"] for m in request["messages"]] == ["You are a fox.", "fk-plain hello"]
        assert request["max_tokens"] == 200 and request["stream"] is False
    assert request["model"] == ("claude-3-5-haiku-latest" if provider == "anthropic" else "gpt-4o-mini")

    row = stored(gateway, item["id"])
    assert row["output"] == PLAIN_TEXT.strip() and row["finish_reason"] == "stop"
    assert (row["prompt_tokens"], row["output_tokens"]) == (prompt, completion)
    assert "sk-e2e-upstream" not in json.dumps(row, default=str)  # the request's key is never stored


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chat_stream(sdk: dict[str, Any], gateway: Server, provider: str) -> None:
    chunks = result(sdk, provider)["chunks"]
    # fakellm streams one word a chunk; loopgate passes each through, then sends the final chunk
    assert len(chunks) == len(STREAM_TEXT.split(" ")) + 1
    assert "".join(chunk["output"] or "" for chunk in chunks) == STREAM_TEXT
    assert [chunk["finish_reason"] for chunk in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert {chunk["index"] for chunk in chunks} == {0}
    (log_id,) = {chunk["id"] for chunk in chunks}
    row = stored(gateway, log_id)
    assert row["output"] == STREAM_TEXT and row["finish_reason"] == "stop"
    assert row["prompt_tokens"] > 0 and row["output_tokens"] > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_two_samples_plain_and_streamed(sdk: dict[str, Any], provider: str) -> None:
    got = result(sdk, provider)
    samples = got["samples"]
    assert [(item["index"], item["output"], item["finish_reason"]) for item in samples["data"]] == [
        (0, SAMPLE_TEXT, "stop"),
        (1, SAMPLE_TEXT, "stop"),
    ]
    responses = samples["provider_responses"]
    assert len(responses) == 2  # one upstream call per sample
    reported = [reported_usage(provider, response) for response in responses]
    # the prompt is billed once, the completions add up
    assert samples["usage"]["prompt_tokens"] == max(prompt for prompt, _ in reported)
    assert samples["usage"]["generation_tokens"] == sum(completion for _, completion in reported)

    grouped = by_index(got["sample_chunks"])
    assert sorted(grouped) == [0, 1]
    for chunks in grouped.values():
        assert "".join(chunk["output"] or "" for chunk in chunks) == SAMPLE_TEXT
        assert [chunk["finish_reason"] for chunk in chunks if chunk["finish_reason"]] == ["stop"]
        assert len(chunks) == len(SAMPLE_TEXT.split(" ")) + 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_call(sdk: dict[str, Any], provider: str) -> None:
    tools = result(sdk, provider)["tools"]
    (item,) = tools["data"]
    assert item["finish_reason"] == "tool_call"
    (call,) = item["tool_calls"]
    assert call["id"] and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    (tool,) = tools["provider_request"]["tools"]
    if provider == "anthropic":
        assert tool["name"] == "get_weather" and tool["input_schema"]["required"] == ["city"]
        assert tools["provider_request"]["tool_choice"] == {"type": "auto"}
    else:
        assert tool["function"]["name"] == "get_weather"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_request_without_a_key_names_where_one_goes(sdk: dict[str, Any], provider: str) -> None:
    missing = result(sdk, provider)["missing_key"]
    assert missing["status"] == 400
    detail = missing["body"]["detail"]
    assert detail["origin"] == ORIGINS[provider] and detail["code"] == 400
    assert f"provider_api_keys.{provider}" in detail["message"]
    assert f"LOOPGATE_{provider.upper()}_API_KEY" in detail["message"]
