"""kill -9 under load: every request that got a 200 has its log, complete, after restart."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from loopgate.store import content
from tests.conftest import make_server
from tests.helpers import chat_body, db_rows, process_tree, unique

_SYSTEM_PROMPT = "You are a careful assistant who answers in full sentences. " * 8


def _hammer(url: str, key: str, project: str, stop: threading.Event, acknowledged: list[str]) -> None:
    config = {
        "provider": "mock",
        "model": "m",
        "chat_template": [{"role": "system", "content": _SYSTEM_PROMPT}],
    }
    with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=5) as http:
        counter = 0
        while not stop.is_set():
            counter += 1
            try:
                response = http.post(
                    "/chat", json=chat_body(project, f"question {counter}", model_config=config)
                )
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                acknowledged.extend(item["id"] for item in response.json()["data"])


# One process with its writer thread; two workers with the supervisor's writer process.
@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_9_loses_no_acknowledged_log(tmp_path: Path, workers: str) -> None:
    server = make_server(tmp_path)
    server.start("--workers", workers, timeout=90)
    assert server.process is not None
    stop = threading.Event()
    acknowledged: list[str] = []
    project = unique("crash")
    workers = [
        threading.Thread(target=_hammer, args=(server.url, server.api_key, project, stop, acknowledged))
        for _ in range(16)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in process_tree(server.process.pid):  # mid-load: requests are in flight
        os.kill(pid, signal.SIGKILL)
    server.process.wait()
    stop.set()
    for worker in workers:
        worker.join()
    assert len(acknowledged) >= 300, "the load never got going"

    server.start()  # recovery: the WAL is replayed, migrations are a no-op
    try:
        with server.client() as http:
            assert http.post("/chat", json=chat_body(project)).status_code == 200
    finally:
        server.stop()

    assert db_rows(server.database, "PRAGMA integrity_check")[0][0] == "ok"
    rows = {r["id"]: r for r in db_rows(server.database, "SELECT id, status, output, payload FROM logs")}
    missing = [log_id for log_id in acknowledged if log_id not in rows]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged logs were lost"
    blobs = {r["hash"] for r in db_rows(server.database, "SELECT hash FROM blobs")}
    for log_id in acknowledged:
        row = rows[log_id]
        assert row["status"] == "complete" and row["output"].startswith("This is a mock response")
        # Nothing half-written: every content reference of the payload resolves.
        assert content.references(orjson.loads(row["payload"]), set()) <= blobs
    # The shared system prompt is stored once, however many logs use it.
    assert len(db_rows(server.database, "SELECT hash FROM blobs WHERE data = ?", _SYSTEM_PROMPT)) == 1
