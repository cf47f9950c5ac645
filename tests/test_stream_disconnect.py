"""A client that leaves mid-stream still gets its partial generation logged, marked as such."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Server
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
    assert "disconnected" in row["error"]
    sent = "".join(e["data"][0]["output"] for e in events)
    assert row["output"].startswith(sent.strip())
    assert row["output"] != "This is a mock response to: one two three four five six seven eight nine ten"
