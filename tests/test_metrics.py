"""``GET /metrics`` (loopgate/metrics.py): Prometheus counts of requests, generations and log commits,
behind ``LOOPGATE_METRICS_TOKEN``, summed over every process of ``serve --workers N``, and read back with
Prometheus's own parser as a scraper would."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loopgate import metrics
from tests.conftest import LOOPGATE, Server, make_server
from tests.helpers import chat_body, sse_events, unique
from tests.test_evaluation_runs import CHAT_CONFIG, Run, judge

TOKEN = "metrics-token-for-the-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    # A new connection each time: with several workers, any of them may answer.
    response = httpx.get(f"{server.base}/metrics", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == metrics.CONTENT_TYPE
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def metered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    server = make_server(tmp_path, backend=request.param, LOOPGATE_METRICS_TOKEN=TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_metrics_are_off_without_a_token(server: Server) -> None:
    assert httpx.get(f"{server.base}/metrics", headers=AUTH, timeout=30).status_code == 404


def test_metrics_need_the_token(metered: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": TOKEN}):
        response = httpx.get(f"{metered.base}/metrics", headers=headers, timeout=30)
        assert response.status_code == 401
        assert "LOOPGATE_METRICS_TOKEN" in response.json()["detail"]
        assert TOKEN not in response.text


def test_generations_requests_and_commits_are_counted(metered: Server) -> None:
    project = unique("metered")
    with metered.client() as client:
        answers = [client.post("/chat", json=chat_body(project, f"m{i}", num_samples=2)) for i in range(3)]
        stream = client.post("/chat", json=chat_body(project, "streamed", stream=True))
        failed = client.post("/chat", json=chat_body(project, "mock-error:400"))
        invalid = client.post("/chat", json={"project": project})
        listed = client.get("/projects")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert (stream.status_code, failed.status_code, invalid.status_code, listed.status_code) == (
        200, 400, 422, 200,
    )  # fmt: skip
    usages = [a.json()["usage"] for a in answers] + [sse_events(stream.text)[-1]["usage"]]
    samples = scrape(metered)

    mock = {"provider": "mock", "model": "mock-1"}
    assert value(samples, "loopgate_generations_total", **mock, status="complete") == 7
    assert value(samples, "loopgate_generations_total", **mock, status="error") == 1
    # The prompt once per call, the output per sample: what the answers report, to the token.
    outputs = sum(usage["generation_tokens"] for usage in usages)
    prompts = sum(usage["prompt_tokens"] for usage in usages)
    assert value(samples, "loopgate_generation_tokens_total", **mock, type="output") == outputs
    assert value(samples, "loopgate_generation_tokens_total", **mock, type="prompt") == prompts
    assert value(samples, "loopgate_provider_duration_seconds_count", **mock) == 5  # calls, not samples

    chat = {"method": "POST", "route": "/v4/chat"}
    assert value(samples, "loopgate_http_requests_total", **chat, code="200") == 4
    assert value(samples, "loopgate_http_requests_total", **chat, code="400") == 1
    assert value(samples, "loopgate_http_requests_total", **chat, code="422") == 1
    assert value(samples, "loopgate_http_requests_total", method="GET", route="/v4/projects", code="200") == 1
    assert value(samples, "loopgate_http_request_duration_seconds_count", **chat) == 6

    # Every generation's log, the failed one's too, in commits that the histogram timed.
    assert value(samples, "loopgate_logs_committed_total") == 8
    commits = value(samples, "loopgate_log_commits_total")
    assert 1 <= commits <= 8
    assert value(samples, "loopgate_log_commit_duration_seconds_count") == commits
    assert value(samples, "loopgate_log_write_failures_total") == 0


def test_evaluator_judgments_and_their_provider_calls_are_counted(metered: Server) -> None:
    """A generated run's judge calls have no log, so they are not generations; their tokens, time and each
    judgment's outcome are counted all the same."""
    with metered.client() as client:
        run = Run(
            client, [{"inputs": {"q": "a"}, "target": {"ok": "yes"}}, {"inputs": {"q": "b"}}], CHAT_CONFIG
        )
        verdict = judge(client, "boolean", "{{log.output}} {{testcase.target.ok}}")
        run.wait(run.start(verdict)["id"])
        chat = client.post("/chat", json=chat_body(unique("judged"), "one more"))
        assert chat.status_code == 200, chat.text
        generated = client.get("/logs", params={"project_id": run.project_id}).json()["records"]
    samples = scrape(metered)
    mock = {"provider": "mock", "model": "mock-1"}
    assert value(samples, "loopgate_generations_total", **mock, status="complete") == 3  # logs only
    # and one judge call: the second datapoint has no target to fill the judge's prompt, so its judgment is
    # an error before any call
    assert value(samples, "loopgate_provider_duration_seconds_count", **mock) == 4
    assert value(samples, "loopgate_evaluator_judgments_total", evaluator_type="llm", outcome="value") == 1
    assert value(samples, "loopgate_evaluator_judgments_total", evaluator_type="llm", outcome="error") == 1
    # The judge's prompt tokens on top of the logged generations' own.
    logged = chat.json()["usage"]["prompt_tokens"] + sum(log["prompt_tokens"] for log in generated)
    assert value(samples, "loopgate_generation_tokens_total", **mock, type="prompt") > logged


def test_route_templates_keep_the_label_set_small(metered: Server) -> None:
    with metered.client() as client:
        project_id = client.post("/chat", json=chat_body(unique("templates"))).json()["project_id"]
        assert client.get(f"/projects/{project_id}").status_code == 200
        assert client.get("/projects/pr_missing").status_code == 404
    assert httpx.get(f"{metered.base}/no/such/path", timeout=30).status_code == 404
    samples = scrape(metered)
    by_id = {"method": "GET", "route": "/v4/projects/{id}"}
    assert value(samples, "loopgate_http_requests_total", **by_id, code="200") == 1
    assert value(samples, "loopgate_http_requests_total", **by_id, code="404") == 1
    assert value(samples, "loopgate_http_requests_total", method="GET", route="unmatched", code="404") == 1
    assert not any(project_id in str(labels) for _, labels in samples)


def test_every_process_of_several_workers_is_counted(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"  # where the server makes the directory its processes share
    temporary.mkdir()
    left_behind = temporary / "loopgate-metrics-999999999-abcd"  # by a server killed outright
    left_behind.mkdir()
    server = make_server(tmp_path, LOOPGATE_METRICS_TOKEN=TOKEN, TMPDIR=str(temporary))
    server.start("--workers", "2", timeout=90)
    try:
        project = unique("workers")
        for i in range(20):  # each on a connection of its own, so both workers take some
            with server.client() as client:
                assert client.post("/chat", json=chat_body(project, f"w{i}")).status_code == 200
        deadline = time.monotonic() + 10
        while value(scrape(server), "loopgate_logs_committed_total") < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        # Processes share their counts once a second; after that every worker reports every process's.
        time.sleep(metrics.SHARE_INTERVAL + 0.5)
        for _ in range(6):
            samples = scrape(server)
            # Committed by the writer process, which serves no request: only its shared counts say so.
            assert value(samples, "loopgate_logs_committed_total") == 20
            mock = {"provider": "mock", "model": "mock-1", "status": "complete"}
            assert value(samples, "loopgate_generations_total", **mock) == 20
            chats = {"method": "POST", "route": "/v4/chat", "code": "200"}
            assert value(samples, "loopgate_http_requests_total", **chats) == 20
        shared = list(temporary.glob("loopgate-metrics-*"))
        assert len(shared) == 1 and not left_behind.exists()
        assert len(list(shared[0].glob("*.json"))) == 3  # two workers and the writer
    finally:
        server.stop()
    assert not shared[0].exists()  # removed when the server stops


def test_a_short_token_is_refused_without_being_echoed(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    env = {**server.env, "LOOPGATE_METRICS_TOKEN": "short-secret"}
    done = subprocess.run([*LOOPGATE, "serve", "--port", "1"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "LOOPGATE_METRICS_TOKEN" in done.stderr
    assert "short-secret" not in done.stderr


# -- the registry on its own ------------------------------------------------------------------------------


def test_label_sets_beyond_the_cap_are_counted_as_other() -> None:
    registry = metrics.Registry()
    for index in range(metrics.MAX_SERIES + 5):
        registry.add(metrics.GENERATIONS, ("openai", f"model-{index}", "complete"))
    series = registry.series[metrics.GENERATIONS]
    assert len(series) == metrics.MAX_SERIES + 1
    assert series[("other", "other", "other")] == [5.0]


def test_histograms_and_escaped_labels_parse_as_prometheus_reads_them() -> None:
    registry = metrics.Registry()
    model = 'gpt "4"\\mini\nnext'
    for seconds in (0.0004, 0.001, 0.3, 100.0):
        registry.observe(metrics.PROVIDER_DURATION, ("openai", model), seconds)
    other = metrics.Registry()
    other.merge(registry.snapshot())
    other.merge(registry.snapshot())  # as a second process's file would be added
    text = metrics.render(other).decode()
    families = text_string_to_metric_families(text)
    (family,) = [f for f in families if f.name == "loopgate_provider_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert {s.labels["model"] for s in family.samples} == {model}
    assert buckets["0.001"] == 4  # 0.0004 and 0.001 (a bound holds values equal to it), twice
    assert buckets["0.5"] == 6
    assert buckets["60"] == 6
    assert buckets["+Inf"] == 8
    (total,) = [s.value for s in family.samples if s.name.endswith("_sum")]
    assert total == pytest.approx(2 * 100.3014)


def test_a_removed_shared_directory_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    for name, value in (("_registry", metrics.Registry()), ("_share_dir", shared), ("_own_file", None)):
        monkeypatch.setattr(metrics, name, value)
    monkeypatch.setattr(metrics, "_last_shared", (0.0, -1))
    metrics.generation("mock", "m", "complete", first_sample=True, prompt_tokens=3, output_tokens=4,
                       seconds=0.1, retries=None)  # fmt: skip
    metrics.share()  # a cleaner of /tmp removed it before the first snapshot
    (written,) = shared.glob("*.json")
    metrics.http_request("GET", "/v4/projects", "200", 0.01)
    written.unlink()
    shared.rmdir()  # and again, later
    metrics.share()
    (again,) = shared.glob("*.json")
    assert again == written
    counts = metrics.Registry()
    counts.merge(orjson.loads(again.read_bytes()))
    assert counts.series[metrics.GENERATIONS][("mock", "m", "complete")] == [1.0]
    assert counts.series[metrics.HTTP_REQUESTS][("GET", "/v4/projects", "200")] == [1.0]
