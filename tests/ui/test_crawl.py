"""Every page of the log browser a person can reach by following links answers without a server error,
over the seeded organization and over one holding the odd records a real one collects: logs under a
tool config, without a config's model, kept with ``save: false``, failed, huge, full of markup and of
text from every script; image parts; feedback of every kind; datasets with nested targets; evaluations
posted and generated, with the judgments' own logs. A template that reads a field some record lacks
(as the log page once did for tool configs) fails here."""

from __future__ import annotations

import re
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, make_server, serving
from tests.ui.conftest import Seeded

MOCK = {"provider": "mock", "model": "mock-1"}
ODD_TEXT = "<script>alert(1)</script> {{x}} ' \" & \u202e שלום 你好 😀 \t\n end"
_LINK = re.compile(r'href="(/ui/[^"#]*)')
_MOST_PAGES = 400


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _seed_odd_records(api: httpx.Client) -> None:
    chat = {"project": "odd", "model_config": MOCK, "messages": [{"role": "user", "content": ODD_TEXT}]}
    answer = _ok(api.post("/chat", json={**chat, "session_reference_id": "odd-session"}))["data"][0]
    _ok(api.post("/chat", json={**chat, "save": False, "metadata": {"<b>": ODD_TEXT}}))
    _ok(api.post("/chat", json={**chat, "messages": [{"role": "user", "content": "mock-error:503"}]}), 503)
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
    ]
    _ok(api.post("/chat", json={**chat, "messages": [{"role": "user", "content": image}]}))
    logs = [
        {
            "project": "odd",
            "config": {"type": "tool", "name": "weather", "parameters": {}},
            "output": "sunny",
        },
        {"project": "odd", "config": {"model": "m", "provider": "openai"}, "error": "upstream down"},
        {"project": "odd", "config": MOCK, "output": "x" * 200_000, "inputs": {"big": "y" * 50_000}},
        {"project": "odd", "config": MOCK, "save": False, "output": "not kept"},
        {
            "project": "odd",
            "config": MOCK,
            "judgment": ["a", "b"],
            "stdout": ODD_TEXT,
            "created_at": "1999-01-01T00:00:00Z",
            "parent_id": answer["id"],
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
                    ],
                },
                {"role": "tool", "content": ODD_TEXT, "tool_call_id": "c1"},
            ],
            "metadata": {"nested": {"deep": [1, None, {"k": ODD_TEXT}]}},
        },
    ]
    created = _ok(api.post("/logs", json=logs))
    project_id = created[0]["project_id"]
    _ok(
        api.post(f"/projects/{project_id}/feedback-types", json={"type": "tags", "class": "multi_select"}),
        201,
    )
    for feedback in (
        {"type": "rating", "value": "good"},
        {"type": "comment", "value": ODD_TEXT},
        {"type": "correction", "value": ""},
        {"type": "tags", "value": ["one", ODD_TEXT]},
    ):
        _ok(api.post("/feedback", json={**feedback, "data_id": answer["id"]}))

    template = [{"role": "user", "content": "{{q}}"}]
    config = _ok(api.post("/model-configs", json={**MOCK, "project": "odd", "chat_template": template}))
    dataset = _ok(
        api.post(f"/projects/{project_id}/datasets", json={"name": ODD_TEXT, "description": ""}), 201
    )
    datapoints = [
        {"inputs": {"q": ODD_TEXT}, "target": {"nested": {"list": [1, 2]}, "text": ODD_TEXT}},
        {"inputs": {"other": "no q"}},  # the generation cannot fill the template: an error log
        {"inputs": {"q": "x"}, "messages": [{"role": "user", "content": "mock-error:400"}]},
    ]
    _ok(api.post(f"/datasets/{dataset['id']}/datapoints", json=datapoints), 201)
    judges = []
    for returns, prompt in (
        ("boolean", "{{log.output}} yes"),
        ("number", "no number"),
        ("text", "{{log.output}}"),
    ):
        body = {
            "name": f"{returns} {ODD_TEXT}",
            "description": ODD_TEXT,
            "arguments_type": "target_free",
            "return_type": returns,
            "type": "llm",
            "model_config": {**MOCK, "prompt_template": prompt},
        }
        judges.append(_ok(api.post("/evaluators", json=body), 201)["id"])
    external = {"name": "ext", "description": "", "arguments_type": "target_free", "return_type": "number"}
    judges.append(_ok(api.post("/evaluators", json={**external, "type": "external"}), 201)["id"])
    run = {"config_id": config["config"]["id"], "dataset_id": dataset["id"], "evaluator_ids": judges}
    evaluation = _ok(api.post(f"/projects/{project_id}/evaluations", json=run), 201)
    deadline = time.monotonic() + 30
    while _ok(api.get(f"/evaluations/{evaluation['id']}"))["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    posted = {**run, "evaluator_ids": judges[-1:], "hl_generated": False, "name": ODD_TEXT}
    _ok(api.post(f"/projects/{project_id}/evaluations", json=posted), 201)


def _crawl(client: httpx.Client) -> tuple[set[str], list[str]]:
    """Every /ui page reachable from the projects list (GET links only), and those that failed."""
    seen = {"/ui/projects"}
    waiting = deque(seen)
    failed = []
    while waiting and len(seen) < _MOST_PAGES:
        path = waiting.popleft()
        response = client.get(path)
        if response.status_code >= 500 or response.status_code not in (200, 303):
            failed.append(f"{response.status_code} {path}")
            continue
        for found in _LINK.findall(response.text):
            link = found.replace("&amp;", "&")
            if link not in seen:
                seen.add(link)
                waiting.append(link)
    return seen, failed


def _crawl_as(server: Server, key: str) -> None:
    with httpx.Client(base_url=server.base, timeout=30.0, follow_redirects=False) as client:
        signed_in = client.post("/ui/sign-in", data={"api_key": key, "next": "/ui/projects"})
        assert signed_in.status_code == 303
        pages, failed = _crawl(client)
    assert not failed, failed
    kinds = {re.sub(r"/(pr|data|sesh|evts|ev|config)_[^/?]+", "/ID", page.split("?")[0]) for page in pages}
    # The crawl reached every kind of page, not just the list it started from.
    reached = {"/ui/logs/ID", "/ui/sessions/ID", "/ui/datasets/ID", "/ui/evaluations/ID", "/ui/evaluators"}
    assert reached <= kinds, kinds


@pytest.mark.parametrize("organization", ["seeded", "odd"])
def test_every_reachable_page_answers(ui_server: Server, seeded: Seeded, organization: str) -> None:
    key = ui_server.api_key
    if organization == "odd":
        key = ui_server.create_key(org="odd-records", name="crawl")
        with ui_server.client(key) as api:
            _seed_odd_records(api)
    _crawl_as(ui_server, key)


def test_every_reachable_page_answers_on_postgresql(tmp_path: Path) -> None:
    # PostgreSQL stores some of the odd records differently (a NUL becomes U+FFFD, JSON is read back by
    # another driver): the same crawl over the same records there.
    server = make_server(tmp_path, backend="postgresql")
    with serving(server):
        with server.client() as api:
            _seed_odd_records(api)
        _crawl_as(server, server.api_key)
