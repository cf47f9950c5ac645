"""The official ``openai`` Python SDK (pinned in constraints.txt) driving a real ``loopgate serve`` through
its OpenAI-compatible door: ``base_url`` at ``/v1`` and a loopgate key as ``api_key``, nothing else changed.

First with the built-in mock provider, then through the ``openai`` provider to fakellm (an OpenAI-shaped
upstream nobody on this team wrote), so the SDK's requests cross loopgate twice: in as OpenAI's wire API,
out as OpenAI's wire API again. Streams are counted chunk by chunk: a parser that drops what it cannot read
would otherwise hide a malformed chunk.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import ROOT, Server, fakellm_process
from tests.helpers import MOCK_REPLY, WEATHER_TOOL, unique
from tests.openai_e2e import loopgates

pytestmark = pytest.mark.e2e

WEATHER = {"type": "function", "function": WEATHER_TOOL}


_OPEN: list[OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every SDK client a test made is closed after it (an open connection is a ResourceWarning)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def sdk(server: Server, api_key: str | None = None, **headers: str) -> OpenAI:
    # max_retries=0: the tests see each status as the server sent it, not after the SDK's own retries.
    client = OpenAI(
        base_url=f"{server.base}/v1",
        api_key=api_key or server.api_key,
        max_retries=0,
        default_headers=headers or None,
        timeout=30,
    )
    _OPEN.append(client)
    return client


def v4_log(server: Server, log_id: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get(f"/logs/{log_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


# -- the mock provider --------------------------------------------------------------------------------


def test_a_plain_completion(server: Server) -> None:
    project = unique("sdk-plain")
    client = sdk(server, **{"X-Loopgate-Project": project})
    raw = client.chat.completions.with_raw_response.create(
        model="mock/mock-1",
        messages=[{"role": "system", "content": "Be a pirate."}, {"role": "user", "content": "Hello?"}],
        temperature=0.2,
        metadata={"run": "sdk"},
    )
    completion = raw.parse()
    (log_id,) = raw.headers["x-loopgate-log-ids"].split(",")

    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.id == "chatcmpl-" + log_id.removeprefix("data_")
    assert completion.model == "mock/mock-1"
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == MOCK_REPLY + "Hello?"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )

    log = v4_log(server, log_id)
    assert (log["project"], log["metadata"], log["config"]["temperature"]) == (project, {"run": "sdk"}, 0.2)
    assert log["output"] == choice.message.content


def test_a_stream_counted_chunk_by_chunk(server: Server) -> None:
    stream = sdk(server).chat.completions.create(
        model="mock/mock-1",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    received = list(stream)
    words = (MOCK_REPLY + "stream me please").split(" ")
    # role + one chunk per word + finish + usage
    assert len(received) == 1 + len(words) + 1 + 1
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in received)
    assert received[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == MOCK_REPLY + "stream me please"
    assert [c.choices[0].finish_reason for c in received[:-1]][-1] == "stop"
    assert received[-1].choices == []
    assert received[-1].usage is not None and received[-1].usage.completion_tokens > 0

    log_id = "data_" + received[0].id.removeprefix("chatcmpl-")
    assert v4_log(server, log_id)["output"] == text


def test_the_sdk_stream_helper_assembles_the_same_answer(server: Server) -> None:
    """``chat.completions.stream`` accumulates the chunks itself and checks their shape as it goes."""
    with sdk(server).chat.completions.stream(
        model="mock/mock-1", messages=[{"role": "user", "content": "assemble me"}], n=2
    ) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()
    assert [c.message.content for c in final.choices] == [
        MOCK_REPLY + "assemble me",
        MOCK_REPLY + "assemble me (sample 2)",
    ]
    assert [c.finish_reason for c in final.choices] == ["stop", "stop"]


@pytest.mark.parametrize("stream", [False, True])
def test_tools_round_trip(server: Server, stream: bool) -> None:
    client = sdk(server)
    question = [{"role": "user", "content": "What is get_weather in Paris?"}]
    if stream:
        with client.chat.completions.stream(
            model="mock/mock-1", messages=question, tools=[WEATHER]
        ) as events:
            for _event in events:
                pass
            first = events.get_final_completion()
    else:
        first = client.chat.completions.create(model="mock/mock-1", messages=question, tools=[WEATHER])
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}

    followed = client.chat.completions.create(
        model="mock/mock-1",
        tools=[WEATHER],
        messages=[
            *question,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
            {"role": "user", "content": "So, warm?"},
        ],
    )
    assert followed.choices[0].message.content == MOCK_REPLY + "So, warm?"


def test_errors_are_the_sdk_s_exceptions(server: Server) -> None:
    message = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.AuthenticationError) as denied:
        sdk(server, api_key="lg_not_a_key").chat.completions.create(model="mock/mock-1", messages=message)
    assert denied.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk(server).chat.completions.create(model="nosuch/model", messages=message)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(server).chat.completions.create(model="mock/mock-1", messages=message, temperature=5)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.RateLimitError) as limited:
        sdk(server).chat.completions.create(
            model="mock/mock-1", messages=[{"role": "user", "content": "mock-error:429"}]
        )
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        sdk(server).chat.completions.create(
            model="mock/mock-1", messages=[{"role": "user", "content": "mock-error:503"}], stream=True
        )


def test_the_readme_example_runs(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    (example,) = [block for block in blocks if "from openai import OpenAI" in block]
    code = textwrap.dedent(example).replace("http://127.0.0.1:8000/v1", f"{server.base}/v1")
    namespace: dict[str, Any] = {}
    exec(code.replace('"lg_..."', repr(server.api_key)), namespace)  # noqa: S102 -- our own README
    namespace["client"].close()
    assert capsys.readouterr().out == MOCK_REPLY + "Hi\n"


def test_models(server: Server) -> None:
    client = sdk(server)
    assert [model.id for model in client.models.list()] == ["mock/mock-1"]
    assert client.models.retrieve("mock/mock-1").owned_by == "loopgate"


# -- through the openai provider, to fakellm ----------------------------------------------------------


@pytest.fixture(scope="module")
def via_fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    """loopgate with fakellm as its ``openai`` upstream and no server-side key; and fakellm's own stats."""
    with (
        fakellm_process(tmp_path_factory.mktemp("fakellm")) as (port, _process),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as stats,
        loopgates(tmp_path_factory, f"http://127.0.0.1:{port}/v1", ["door"]) as servers,
    ):
        yield servers["door"], stats


def fakellm_calls(stats: httpx.Client, rule: str) -> int:
    count: int = stats.get("/_fakellm/stats").json()["by_rule"].get(rule, 0)
    return count


def test_through_the_openai_provider_to_fakellm(via_fakellm: tuple[Server, httpx.Client]) -> None:
    server, stats = via_fakellm
    key = f"sk-door-{uuid.uuid4().hex}"
    client = sdk(server, **{"X-Provider-Api-Key": key, "X-Loopgate-Project": unique("sdk-fk")})
    before = {rule: fakellm_calls(stats, rule) for rule in ("plain", "stream", "weather_tool")}

    plain = client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "fk-plain: say bonjour"}]
    )
    assert plain.choices[0].message.content == "  Bonjour from fakellm: plain and simple.  "
    assert plain.choices[0].finish_reason == "stop"

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",  # a bare name goes to openai too
            messages=[{"role": "user", "content": "fk-stream please"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The quick brown fox jumps over the lazy dog."
    assert len(chunks) == 1 + len(text.split(" ")) + 1  # role, one word a chunk (as fakellm sends), finish
    assert chunks[-1].choices[0].finish_reason == "stop"

    tools = client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER]
    )
    (call,) = tools.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris", "unit": "celsius"},
    )
    assert tools.choices[0].finish_reason == "tool_calls"

    after = {rule: fakellm_calls(stats, rule) for rule in before}
    assert after == {rule: count + 1 for rule, count in before.items()}  # each call reached fakellm once

    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "fk-fault-429"}]
        )
    assert "Rate limit reached" in limited.value.message
    assert key.encode() not in server.database.read_bytes()
