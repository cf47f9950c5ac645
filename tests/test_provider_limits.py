"""Per-provider timeouts (LOOPGATE_PROVIDER_TIMEOUTS / LOOPGATE_PROVIDER_CONNECT_TIMEOUTS over the global
defaults) and the upstream retries recorded on each log (``provider_retries``), against a loopback upstream
through a real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from loopgate.config import Settings

from .conftest import Server, make_server
from .helpers import db_rows, log_row, unique
from .loopback import Loopback, Reply, running, sse
from .test_retries import RATE_LIMITED, SERVER_ERROR, Sequence, chunk, completion, message


@pytest.fixture(scope="module")
def upstream() -> Iterator[Loopback]:
    yield from running()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, upstream: Loopback) -> Iterator[Server]:
    server = make_server(
        tmp_path_factory.mktemp("limits"),
        LOOPGATE_OPENAI_BASE_URL=f"{upstream.url}/v1",
        LOOPGATE_OPENAI_API_KEY="sk-test",
        LOOPGATE_ANTHROPIC_BASE_URL=upstream.url,
        LOOPGATE_ANTHROPIC_API_KEY="sk-ant-test",
        LOOPGATE_PROVIDER_TIMEOUTS='{"anthropic": 0.5}',
        LOOPGATE_PROVIDER_MAX_RETRIES="2",
        LOOPGATE_PROVIDER_RETRY_BASE_DELAY="0.01",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(limited: Server) -> Iterator[httpx.Client]:
    with limited.client() as http:
        yield http


def slow(reply: Reply, seconds: float) -> Callable[[dict[str, Any]], Reply]:
    def answer(_body: dict[str, Any]) -> Reply:
        time.sleep(seconds)
        return reply

    return answer


def chat(project: str, provider: str, marker: str, **extra: Any) -> dict[str, Any]:
    return {
        "project": project,
        "model_config": {"provider": provider, "model": "m"},
        "messages": [{"role": "user", "content": marker}],
        **extra,
    }


def project_logs(server: Server, project: str) -> list[Any]:
    return db_rows(
        server.database,
        "SELECT l.* FROM logs l JOIN projects p ON p.id = l.project_id WHERE p.name = ?",
        project,
    )


# -- settings -------------------------------------------------------------------------------------------


def test_timeouts_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPGATE_PROVIDER_TIMEOUTS", '{"anthropic": 120}')
    monkeypatch.setenv("LOOPGATE_PROVIDER_CONNECT_TIMEOUTS", '{"bedrock": 3.5}')
    monkeypatch.setenv("LOOPGATE_PROVIDER_TIMEOUT", "300")
    settings = Settings()
    assert settings.timeouts("anthropic") == (10.0, 120.0)
    assert settings.timeouts("bedrock") == (3.5, 300.0)
    assert settings.timeouts("openai") == (10.0, 300.0)
    assert Settings().timeouts("anything") == (10.0, 300.0)


# -- timeouts -------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_provider_timeout_is_504_and_others_unaffected(
    client: httpx.Client, limited: Server, upstream: Loopback
) -> None:
    project = unique("timeout")
    late_message = upstream.script(slow(Reply(body=message("too late")), 1.5))
    started = time.monotonic()
    response = client.post("/chat", json=chat(project, "anthropic", late_message))
    assert response.status_code == 504, response.text
    assert time.monotonic() - started < 1.4  # gave up at anthropic's 0.5 s, not the upstream's 1.5 s
    detail = response.json()["detail"]
    assert (detail["origin"], detail["code"], detail["type"]) == ("Anthropic", 504, "gateway_timeout_error")
    assert len(upstream.calls(late_message)) == 1  # a timeout is not retried
    [row] = project_logs(limited, project)
    assert row["status"] == "error"
    assert row["error"] == "Anthropic: Anthropic did not answer in time"
    assert row["provider_retries"] == 0

    # openai has no override: the global 600 s applies, so the same delay is just a slow answer.
    late_completion = upstream.script(slow(Reply(body=completion("slow but fine")), 1.0))
    response = client.post("/chat", json=chat(unique("timeout"), "openai", late_completion))
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["raw_output"] == "slow but fine"


@pytest.mark.e2e
def test_provider_timeout_applies_to_streams(client: httpx.Client, upstream: Loopback) -> None:
    late = upstream.script(slow(Reply(body=message("too late")), 1.5))
    response = client.post("/chat", json=chat(unique("timeout"), "anthropic", late, stream=True))
    assert response.status_code == 504, response.text
    assert response.json()["detail"]["origin"] == "Anthropic"


# -- retries on the log ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_retry_count_is_logged(client: httpx.Client, limited: Server, upstream: Loopback) -> None:
    recovered = upstream.script(Sequence(Reply(500, SERVER_ERROR), Reply(body=completion("recovered"))))
    response = client.post("/chat", json=chat(unique("retries"), "openai", recovered))
    assert response.status_code == 200, response.text
    log_id = response.json()["data"][0]["id"]
    row = log_row(limited.database, log_id)
    assert row is not None
    assert (row["status"], row["provider_retries"]) == ("complete", 1)
    shown = client.get(f"/logs/{log_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["provider_retries"] == 1

    first_time = upstream.script(Reply(body=completion("at once")))
    response = client.post("/chat", json=chat(unique("retries"), "openai", first_time))
    row = log_row(limited.database, response.json()["data"][0]["id"])
    assert row is not None and row["provider_retries"] == 0


@pytest.mark.e2e
def test_final_error_and_retries_logged_when_giving_up(
    client: httpx.Client, limited: Server, upstream: Loopback
) -> None:
    project = unique("retries")
    limited_rate = upstream.script(Reply(429, RATE_LIMITED))
    response = client.post("/chat", json=chat(project, "openai", limited_rate))
    assert response.status_code == 429, response.text
    assert len(upstream.calls(limited_rate)) == 3  # the call and max_retries=2 retries
    [row] = project_logs(limited, project)
    assert (row["status"], row["provider_retries"], row["error"]) == ("error", 2, "OpenAI: Slow down")


@pytest.mark.e2e
def test_stream_retries_logged(client: httpx.Client, limited: Server, upstream: Loopback) -> None:
    project = unique("retries")
    frames = sse(chunk("Hello"), chunk(finish="stop"), "[DONE]")
    marker = upstream.script(Sequence(Reply(503, SERVER_ERROR), Reply(frames=frames)))
    response = client.post("/chat", json=chat(project, "openai", marker, stream=True))
    assert response.status_code == 200, response.text
    assert "Hello" in response.text
    [row] = project_logs(limited, project)
    assert (row["status"], row["provider_retries"]) == ("complete", 1)
