"""A client that leaves mid-stream, or a server that stops, still gets the partial generation logged, marked
as such."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, make_server
from tests.helpers import chat_body, log_row, sse_events, unique


def test_disconnect_mid_stream_logs_partial_output(server: Server) -> None:
    config = {"provider": "mock", "model": "m", "other": {"mock_delay_ms": 100}}
    body = chat_body(
        unique(), "one two three four five six seven eight nine ten", model_config=config, stream=True
    )
    received: list[str] = []
    with (
        httpx.Client(base_url=server.url, headers={"X-API-KEY": server.api_key}, timeout=10) as http,
        http.stream("POST", "/chat", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 3:
                break  # leaving the with-block closes the connection mid-stream
    events = sse_events("\n".join(received))
    log_id = events[0]["data"][0]["id"]
    deadline = time.monotonic() + 10
    row = None
    while time.monotonic() < deadline:
        row = log_row(server.database, log_id)
        if row is not None:
            break
        time.sleep(0.05)
    assert row is not None, "the partial stream was not logged"
    assert row["status"] == "partial"
    assert row["error"] == "stream ended early: client disconnected"
    sent = "".join(e["data"][0]["output"] for e in events)
    assert row["output"].startswith(sent.strip())
    assert row["output"] != "This is a mock response to: one two three four five six seven eight nine ten"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stopping_server_cuts_a_long_stream_and_commits_its_partial_log(
    tmp_path: Path, workers: str
) -> None:
    """SIGTERM waits LOOPGATE_SHUTDOWN_TIMEOUT for requests in flight, then cuts them short: the client's
    stream ends without its final event, and what was generated is committed before the server exits
    (by the writer process, with several workers)."""
    server = make_server(tmp_path, LOOPGATE_SHUTDOWN_TIMEOUT="1")
    server.start("--workers", workers, timeout=90)
    assert server.process is not None
    config = {"provider": "mock", "model": "m", "other": {"mock_delay_ms": 300}}
    text = "one two three four five six seven eight nine ten"
    body = chat_body(unique(), text, model_config=config, stream=True)
    received: list[str] = []
    try:
        with (
            httpx.Client(base_url=server.url, headers={"X-API-KEY": server.api_key}, timeout=30) as http,
            http.stream("POST", "/chat", json=body) as response,
        ):
            lines = response.iter_lines()
            while len(received) < 2:
                line = next(lines)
                if line.startswith("data: "):
                    received.append(line)
            stopped_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            # The connection closes with the body unfinished: the client knows the stream was cut.
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                received.extend(line for line in lines if line.startswith("data: "))
        # uvicorn re-raises the SIGTERM once it has stopped; the supervisor of several workers exits 0.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        took = time.monotonic() - stopped_at
    finally:
        server.stop()
    events = sse_events("\n".join(received))
    assert "usage" not in events[-1]  # no final event: the stream was cut short
    assert took < 4  # the rest of the stream would have taken ~6 s
    row = log_row(server.database, events[0]["data"][0]["id"])
    assert row is not None and row["status"] == "partial"
    assert row["error"] == "stream cut short: the server was stopping"
    sent = "".join(e["data"][0]["output"] for e in events)
    assert row["output"].startswith(sent.strip())
    assert row["output"] != f"This is a mock response to: {text}"
