"""OTLP export end to end: ``loopgate serve`` with ``LOOPGATE_OTLP_ENDPOINT`` at a collector of the test's
own (tests/otlp_collector.py). Spans arrive with their session's trace and their parent; a collector that
is down or answers 503 loses nothing, and a restart resumes from the cursor without sending again what was
acknowledged; a refused batch is dropped, not retried forever; with ``--workers 2`` each log is sent once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopgate.service import otlp_spans
from tests.conftest import Server, free_port, make_server
from tests.helpers import chat_body, chat_everywhere, db_rows, unique
from tests.otlp_collector import Collector, parse


@pytest.fixture
def collector() -> Iterator[Collector]:
    instance = Collector()
    yield instance
    instance.close()


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "the spans") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not arrive within {timeout} s")


def _exporting(tmp_path: Path, endpoint: str, backend: str = "sqlite", **env: str) -> Server:
    return make_server(tmp_path, backend=backend, LOOPGATE_OTLP_ENDPOINT=endpoint, **env)


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {pair["key"]: next(iter(pair["value"].values())) for pair in span["attributes"]}


def _by_log_id(collector: Collector) -> dict[str, dict[str, Any]]:
    return {_attributes(span)["loopgate.log_id"]: span for span in collector.spans()}


def _chat(client: httpx.Client, project: str, text: str, **extra: Any) -> dict[str, Any]:
    answer = client.post("/chat", json=chat_body(project, text, **extra))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_sessions_spans_arrive_in_one_trace_with_their_parents(
    tmp_path: Path, collector: Collector, backend: str
) -> None:
    server = _exporting(
        tmp_path,
        collector.endpoint,
        backend,
        LOOPGATE_OTLP_HEADERS="authorization=Bearer%20collector-secret,x-tenant=tests",
        LOOPGATE_OTLP_SERVICE_NAME="gateway-under-test",
    )
    server.start()
    project = unique("otlp")
    try:
        with server.client() as client:
            root = _chat(client, project, "root", session_reference_id=unique("conversation"))
            root_id, session_id = root["data"][0]["id"], root["session_id"]
            child = _chat(client, project, "child", parent_id=root_id, metadata={"customer": "acme"})
            child_id = child["data"][0]["id"]
            other = _chat(client, project, "another conversation", session_reference_id=unique("other"))
            other_child = _chat(client, project, "cross", session_id=other["session_id"], parent_id=root_id)
            cross_id = other_child["data"][0]["id"]
            lone = _chat(client, project, "no session at all")["data"][0]["id"]
        wanted = {root_id, child_id, other["data"][0]["id"], cross_id, lone}
        _wait_for(lambda: wanted <= _by_log_id(collector).keys())
    finally:
        server.stop()

    spans = _by_log_id(collector)
    assert spans[root_id]["traceId"] == spans[child_id]["traceId"] == otlp_spans.trace_id(session_id)
    assert spans[child_id]["parentSpanId"] == spans[root_id]["spanId"] == otlp_spans.span_id(root_id)
    assert "parentSpanId" not in spans[root_id]
    # A child in another session than its parent: in that session's trace, linked to its parent.
    assert spans[cross_id]["traceId"] == otlp_spans.trace_id(other["session_id"])
    assert spans[cross_id]["links"] == [
        {"traceId": spans[root_id]["traceId"], "spanId": spans[root_id]["spanId"]}
    ]
    assert spans[lone]["traceId"] == otlp_spans.trace_id(lone)

    attributes = _attributes(spans[child_id])
    assert spans[child_id]["name"] == "chat mock-1"
    assert attributes["gen_ai.system"] == "mock"
    assert attributes["gen_ai.request.model"] == "mock-1"
    assert attributes["loopgate.session_id"] == session_id
    assert attributes["loopgate.metadata.customer"] == "acme"
    assert int(attributes["gen_ai.usage.input_tokens"]) > 0
    assert int(spans[child_id]["endTimeUnixNano"]) >= int(spans[child_id]["startTimeUnixNano"])
    assert "events" not in spans[child_id]  # content is not exported by default

    for request in collector.received:
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"] == "Bearer collector-secret"
        assert request.headers["x-tenant"] == "tests"
        parsed = parse(request.body)  # what a collector would take
        names = {a.key: a.value.string_value for a in parsed.resource_spans[0].resource.attributes}
        assert names["service.name"] == "gateway-under-test"


def test_content_is_exported_when_asked(tmp_path: Path, collector: Collector) -> None:
    server = _exporting(tmp_path, collector.endpoint, LOOPGATE_OTLP_CAPTURE_CONTENT="true")
    server.start()
    try:
        with server.client() as client:
            log_id = _chat(client, unique("content"), "what is the secret word?")["data"][0]["id"]
        _wait_for(lambda: log_id in _by_log_id(collector))
    finally:
        server.stop()
    events = _by_log_id(collector)[log_id]["events"]
    assert [event["name"] for event in events] == ["gen_ai.user.message", "gen_ai.choice"]
    assert _attributes(events[0])["content"] == "what is the secret word?"


def test_gzip_bodies_when_asked(tmp_path: Path, collector: Collector) -> None:
    env = {"LOOPGATE_OTLP_COMPRESSION": "gzip", "LOOPGATE_OTLP_CAPTURE_CONTENT": "true"}
    server = _exporting(tmp_path, collector.endpoint, **env)
    server.start()
    try:
        with server.client() as client:
            ids = [_chat(client, unique("gzip"), f"question {n} " * 40)["data"][0]["id"] for n in range(20)]
        _wait_for(lambda: set(ids) <= _by_log_id(collector).keys())
    finally:
        server.stop()
    assert all(request.headers["content-encoding"] == "gzip" for request in collector.received)
    assert all(request.wire_size < len(request.body) / 2 for request in collector.received)
    assert (
        sum(len(parse(request.body).resource_spans[0].scope_spans[0].spans) for request in collector.received)
        >= 20
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_outage_loses_nothing_and_a_restart_resumes_from_the_cursor(tmp_path: Path, backend: str) -> None:
    port = free_port()
    server = _exporting(tmp_path, f"http://127.0.0.1:{port}", backend)
    project = unique("outage")
    server.start()
    collector: Collector | None = None
    try:
        with server.client() as client:  # the collector is not even listening yet
            down = [_chat(client, project, f"down {i}")["data"][0]["id"] for i in range(3)]
        time.sleep(1.5)
        collector = Collector(port=port, status=503, retry_after="1")
        with server.client() as client:  # now it answers 503
            unavailable = [_chat(client, project, f"503 {i}")["data"][0]["id"] for i in range(3)]
        _wait_for(lambda: collector is not None and collector.refused > 0, what="a refused try")
        assert collector.received == []
        collector.status = 200
        _wait_for(lambda: set(down + unavailable) <= _by_log_id(collector).keys(), timeout=40)

        collector.status = 503  # down again, and loopgate stops meanwhile
        with server.client() as client:
            while_stopped = [_chat(client, project, f"before restart {i}")["data"][0]["id"] for i in range(3)]
        _wait_for(lambda: collector is not None and collector.refused > 1, what="a refused try")
        server.stop()
        collector.status = 200
        server.start()
        _wait_for(lambda: set(while_stopped) <= _by_log_id(collector).keys())
        time.sleep(1.5)  # anything sent twice would have come by now
    finally:
        server.stop()
        if collector is not None:
            collector.close()
    counts = Counter(_attributes(span)["loopgate.log_id"] for span in collector.spans())
    # The collector never answered 2xx to a batch it did not take, so nothing was sent twice.
    assert counts == Counter(down + unavailable + while_stopped)
    (cursor,) = db_rows(server.database, "SELECT exported, dropped, owner FROM export_cursors")
    assert (cursor[0], cursor[1]) == (9, 0)
    assert cursor[2] is None  # the lease was given up at shutdown


def test_after_a_crash_the_restarted_server_resumes_without_waiting_out_the_lease(
    tmp_path: Path, collector: Collector
) -> None:
    """kill -9 leaves the lease held by a process that is gone; the new process, on the same host, sees
    that and takes it at once instead of after its 30 s."""
    collector.status, collector.retry_after = 503, "1"
    server = _exporting(tmp_path, collector.endpoint)
    server.start()
    try:
        with server.client() as client:
            log_ids = [_chat(client, unique("crash"), f"m{i}")["data"][0]["id"] for i in range(3)]
        _wait_for(lambda: collector.refused > 0, what="a refused try")
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        (owner,) = db_rows(server.database, "SELECT owner FROM export_cursors")[0]
        assert owner is not None and f":{server.process.pid}:" in owner
        collector.status = 200
        server.start()
        _wait_for(lambda: set(log_ids) <= _by_log_id(collector).keys(), timeout=15)
    finally:
        server.stop()


def test_a_refused_batch_is_dropped_and_export_goes_on(tmp_path: Path, collector: Collector) -> None:
    collector.status = 400
    server = _exporting(tmp_path, collector.endpoint, LOOPGATE_OTLP_HEADERS="api-key=collector-secret")
    server.start()
    try:
        with server.client() as client:
            refused = _chat(client, unique("refused"), "refused")["data"][0]["id"]
            _wait_for(lambda: collector.refused == 1, what="the refused try")
            collector.status = 200
            taken = _chat(client, unique("refused"), "taken")["data"][0]["id"]
        _wait_for(lambda: taken in _by_log_id(collector))
    finally:
        server.stop()
    assert refused not in _by_log_id(collector)
    assert collector.refused == 1
    assert server.log_path is not None
    log = server.log_path.read_text()
    assert "refused a batch of 1 spans with status 400; dropped" in log
    assert "collector-secret" not in log  # headers may hold credentials: never logged
    (cursor,) = db_rows(server.database, "SELECT exported, dropped FROM export_cursors")
    assert tuple(cursor) == (1, 1)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_export_each_log_once(tmp_path: Path, collector: Collector, backend: str) -> None:
    server = _exporting(tmp_path, collector.endpoint, backend)
    project = unique("workers")
    bodies = [chat_body(project, f"m{i}") for i in range(40)]
    server.start("--workers", "2", timeout=90)
    try:
        responses = asyncio.run(chat_everywhere([server], bodies))
        assert {r.status_code for r in responses} == {200}
        log_ids = [r.json()["data"][0]["id"] for r in responses]
        _wait_for(lambda: set(log_ids) <= _by_log_id(collector).keys())
        time.sleep(2.0)  # a second exporter would have sent its copies by now
    finally:
        server.stop()
    counts = Counter(_attributes(span)["loopgate.log_id"] for span in collector.spans())
    assert counts == Counter(log_ids)
