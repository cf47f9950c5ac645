"""Datasets and evaluation runs in the log browser, over plain HTTP: what each page shows, paging, a
dataset whose project was deleted, and another organization's ids reading as not found."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.ui.conftest import Seeded


@contextmanager
def _signed_in(server: Server, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30.0, follow_redirects=False) as client:
        response = client.post("/ui/sign-in", data={"api_key": key, "next": "/ui/projects"})
        assert response.status_code == 303
        yield client


@pytest.fixture
def browser(ui_server: Server, seeded: Seeded) -> Iterator[httpx.Client]:
    with _signed_in(ui_server, ui_server.api_key) as client:
        yield client


def _text(html: str) -> str:
    """The page's words without tags, so assertions read like what a person sees."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_project_tabs_lead_to_datasets_and_evaluations(browser: httpx.Client, seeded: Seeded) -> None:
    page = browser.get(f"/ui/projects/{seeded.faq_project_id}/logs").text
    assert f'href="/ui/projects/{seeded.faq_project_id}/datasets"' in page
    assert f'href="/ui/projects/{seeded.faq_project_id}/evaluations"' in page


def test_dataset_list_and_dataset_page(browser: httpx.Client, seeded: Seeded) -> None:
    listing = browser.get(f"/ui/projects/{seeded.faq_project_id}/datasets")
    assert listing.status_code == 200
    text = _text(listing.text)
    assert "faq-golden" in text and "Questions every support agent must answer right" in text
    assert f'href="/ui/datasets/{seeded.dataset_id}"' in listing.text
    assert re.search(r"faq-golden .*? 3 ", text)  # two copied logs and one written datapoint

    page = browser.get(f"/ui/datasets/{seeded.dataset_id}")
    assert page.status_code == 200
    rows = page.text.split("<tbody>")[1].split("</tbody>")[0].count("<tr ")
    assert rows == 3
    text = _text(page.text)
    # Copied from logs: the conversation sent (the template rendered) and the log's output as target.
    assert "How do I reset my password?" in text and "a concise support agent for Acme" in text
    assert "get_order_status" in text  # the copied tool-call log keeps its tool calls in the target
    assert "Do you have a phone line?" in text and "+351 210 000 000" in text
    assert "company Acme" in text


def test_an_empty_project_says_how_to_make_datasets_and_runs(browser: httpx.Client, seeded: Seeded) -> None:
    assert "No datasets in this project yet" in browser.get(f"/ui/projects/{seeded.project_id}/datasets").text
    assert (
        "No evaluations in this project yet"
        in browser.get(f"/ui/projects/{seeded.project_id}/evaluations").text
    )


def test_evaluation_list_shows_status_dataset_and_means(browser: httpx.Client, seeded: Seeded) -> None:
    page = browser.get(f"/ui/projects/{seeded.faq_project_id}/evaluations")
    assert page.status_code == 200
    text = _text(page.text)
    assert "nightly" in text and "running" in text
    assert "faq-golden 3 datapoints" in text
    assert "exact-match 0.5" in text  # true and false
    assert "helpfulness 3.5" in text  # 5 and 2
    assert f'href="/ui/evaluations/{seeded.evaluation_id}"' in page.text


def test_evaluation_page_shows_each_datapoint_its_log_and_results(
    browser: httpx.Client, seeded: Seeded
) -> None:
    page = browser.get(f"/ui/evaluations/{seeded.evaluation_id}")
    assert page.status_code == 200
    text = _text(page.text)
    assert "2 of 3 datapoints have a log" in text
    assert "exact-match The output equals the target external boolean 0.5" in text
    assert "helpfulness A reviewer&#39;s score from 1 to 5 human number 3.5" in text
    body = page.text.split('<table class="grid run">')[1]
    rows = body.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    assert len(rows) == 3
    first, second, third = (_text(row) for row in rows)
    assert "Open Settings, then Reset password." in first and "true" in first and " 5 " in first + " "
    assert "No refunds after 30 days." in second and "false" in second and " 2 " in second + " "
    assert "no log yet" in third and "Do you have a phone line?" in third
    assert "get_order_status" in second  # a tool call's target is shown whole, not as an empty output
    assert f'href="/ui/logs/{seeded.evaluation_log_id}"' in page.text
    assert 'class="chip fb-good">true<' in page.text and 'class="chip fb-bad">false<' in page.text


def test_pages_of_datapoints(browser: httpx.Client, ui_server: Server) -> None:
    with ui_server.client() as api:
        project = api.post("/projects", json={"name": "paged-datasets"}).json()["id"]
        dataset = api.post(f"/projects/{project}/datasets", json={"name": "big", "description": ""}).json()
        points = [{"inputs": {"n": str(n)}, "target": {"output": f"answer {n}"}} for n in range(55)]
        assert api.post(f"/datasets/{dataset['id']}/datapoints", json=points).status_code == 201
    first = browser.get(f"/ui/datasets/{dataset['id']}").text
    assert "answer 0" in first and "answer 49" in first and "answer 50" not in first
    assert 'rel="next"' in first
    second = browser.get(f"/ui/datasets/{dataset['id']}?page=2").text
    assert "answer 50" in second and "answer 54" in second and "answer 49" not in second
    assert 'rel="next"' not in second


def test_a_dataset_whose_project_was_deleted_still_opens(browser: httpx.Client, ui_server: Server) -> None:
    with ui_server.client() as api:
        project = api.post("/projects", json={"name": "short-lived"}).json()["id"]
        dataset = api.post(f"/projects/{project}/datasets", json={"name": "kept", "description": ""}).json()
        assert api.delete(f"/projects/{project}").status_code == 204
    page = browser.get(f"/ui/datasets/{dataset['id']}")
    assert page.status_code == 200
    assert "its project was deleted" in page.text and "short-lived" not in page.text


def test_another_organization_reads_as_not_found(ui_server: Server, seeded: Seeded) -> None:
    with _signed_in(ui_server, seeded.other_key) as other:
        for path in (
            f"/ui/projects/{seeded.faq_project_id}/datasets",
            f"/ui/projects/{seeded.faq_project_id}/evaluations",
            f"/ui/datasets/{seeded.dataset_id}",
            f"/ui/evaluations/{seeded.evaluation_id}",
        ):
            response = other.get(path)
            assert response.status_code == 404, path
            assert "faq-golden" not in response.text and "nightly" not in response.text


@dataclass
class _GeneratedRun:
    project: str
    evaluation: str
    judges: list[str]


MOCK = {"provider": "mock", "model": "mock-1"}


def _generated_run(
    api: httpx.Client, project: str, points: list[dict[str, Any]], judges: list[tuple[str, str, str]]
) -> _GeneratedRun:
    """A run loopgate generates over ``points`` with llm judges ``(name, return type, prompt)``, completed."""
    config = {**MOCK, "project": project, "chat_template": [{"role": "user", "content": "{{q}}"}]}
    registered = api.post("/model-configs", json=config).json()
    project_id = registered["project_id"]
    dataset = api.post(f"/projects/{project_id}/datasets", json={"name": project, "description": ""}).json()
    assert api.post(f"/datasets/{dataset['id']}/datapoints", json=points).status_code == 201
    judge_ids = []
    for name, returns, template in judges:
        body = {
            "name": name,
            "description": "",
            "arguments_type": "target_required",
            "return_type": returns,
            "type": "llm",
            "model_config": {**MOCK, "prompt_template": template},
        }
        judge_ids.append(api.post("/evaluators", json=body).json()["id"])
    run = {"config_id": registered["config"]["id"], "dataset_id": dataset["id"], "evaluator_ids": judge_ids}
    evaluation = api.post(f"/projects/{project_id}/evaluations", json=run).json()["id"]
    deadline = time.monotonic() + 30
    while api.get(f"/evaluations/{evaluation}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return _GeneratedRun(project_id, evaluation, judge_ids)


def test_a_run_loopgate_generated_shows_its_logs_and_each_kind_of_judgment(
    browser: httpx.Client, ui_server: Server
) -> None:
    with ui_server.client() as api:
        generated = _generated_run(
            api,
            "generated-run",
            [{"inputs": {"q": "capital of France"}, "target": {"tags": "geo, europe"}}],
            [
                ("select", "select", "Pick: {{log.inputs.q}}"),
                ("multi_select", "multi_select", "{{testcase.target.tags}}\nlast"),
            ],
        )
    evaluation, judges = generated.evaluation, generated.judges
    html = browser.get(f"/ui/evaluations/{evaluation}").text
    text = _text(html)
    assert "1 of 1 datapoint has a log" in text
    assert "This is a mock response to: capital of France" in text  # the generated log's output
    assert "This is a mock response to: Pick: capital of France" in text  # the select's choice
    assert "This is a mock response to: geo, europe, last" in text  # the multi_select's choices, joined
    # Text answers wrap (a chip that never wrapped made the table 2,280 px wide), the whole text in a title.
    assert (
        '<span class="chip chip-text fb-other" title="This is a mock response to: Pick: capital of France">'
        in html
    )
    assert '<td class="nowrap">' not in html
    # Each result links to its judgment's log, whose page shows the prompt the judge was sent.
    judgment_links = re.findall(r'<a class="judgment" href="(/ui/logs/data_[^"]+)"', html)
    assert len(judgment_links) == 2
    judgment = _text(browser.get(judgment_links[0]).text)
    assert "Pick: capital of France" in judgment and "select (evaluator evfn_" in judgment
    assert "Judgment" in judgment and "Judged" in judgment  # its value, and a link to the judged log
    # The judged log's page lists the results on it, by evaluator name, with a link to the run.
    judged = re.search(r'<a href="/ui/logs/(data_[^"]+)">This is a mock response to: capital', html)
    assert judged is not None
    judged_page = browser.get(f"/ui/logs/{judged.group(1)}").text
    results = _text(judged_page.split('<h2 id="evaluations-title">', 1)[1].split("</section>", 1)[0])
    assert results.startswith("Evaluation results select:") and "multi_select:" in results
    assert f'href="/ui/evaluations/{evaluation}#' in judged_page
    # The organization's evaluators, each with the project its judgments went to.
    listed = browser.get("/ui/evaluators").text
    row = listed.split(f'<tr id="{judges[0]}">', 1)[1].split("</tr>", 1)[0]
    assert "select" in row and "mock-1" in row and "(evaluator evfn_" in row
    assert re.search(r'href="/ui/projects/pr_[^"]+/logs">select \(evaluator', row)


def test_the_log_list_is_filtered_by_a_judges_verdict(browser: httpx.Client, ui_server: Server) -> None:
    with ui_server.client() as api:
        points = [
            {"inputs": {"q": "first"}, "target": {"v": "yes"}},
            {"inputs": {"q": "second"}, "target": {"v": "no"}},
        ]
        generated = _generated_run(
            api, "judged-logs", points, [("ui-verdict", "boolean", "{{testcase.target.v}}")]
        )
        records = api.get(f"/evaluations/{generated.evaluation}/datapoints").json()["records"]
        passed, failed = (record["log"]["id"] for record in records)
    project, (judge,) = generated.project, generated.judges
    everything = browser.get(f"/ui/projects/{project}/logs").text
    assert f'<option value="{judge}:false">ui-verdict: false</option>' in everything
    assert passed in everything and failed in everything
    only_failed = browser.get(f"/ui/projects/{project}/logs", params={"evaluation": f"{judge}:false"}).text
    assert failed in only_failed and passed not in only_failed
    assert f'<option value="{judge}:false" selected>' in only_failed
