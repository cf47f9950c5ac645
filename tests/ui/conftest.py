"""A real ``loopgate serve`` with seeded data (through the v4 API, provider ``mock``), a second
organization, and a headless Debian chromium driven by playwright.

Screenshots go to a temporary directory always, and to docs/screenshots/ when
``LOOPGATE_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server, make_server, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 850}
SECRET = "sk-live-DO-NOT-SHOW-1234"
SUPPORT_TEMPLATE = [{"role": "system", "content": "You are a concise support agent for {{company}}."}]
ORDER_TOOL = {
    "name": "get_order_status",
    "description": "Look up an order by its number",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}
V1 = {"provider": "mock", "model": "mock-1", "temperature": 0.7, "chat_template": SUPPORT_TEMPLATE}
V2 = {
    "provider": "mock",
    "model": "mock-1",
    "temperature": 0.2,
    "max_tokens": 256,
    "chat_template": SUPPORT_TEMPLATE,
    "tools": [ORDER_TOOL],
}


@dataclass
class Seeded:
    """Ids of the seeded data the tests navigate to."""

    project_id: str
    v1_id: str
    v2_id: str
    tool_log_id: str  # a generated log whose output is a tool call
    session_id: str
    root_log_id: str
    child_log_id: str  # POST /logs: assistant tool call + tool result in its messages; parent = root
    grandchild_log_id: str
    other_project_id: str  # another organization's
    other_log_id: str
    other_key: str
    faq_project_id: str  # a project with a dataset and an evaluation run
    dataset_id: str
    evaluation_id: str
    evaluation_log_id: str  # the log posted for the run's first datapoint


def _post(client: httpx.Client, path: str, body: Any) -> Any:
    response = client.post(path, json=body)
    assert response.status_code < 300, response.text
    return response.json()


def _chat(client: httpx.Client, config: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    body = {
        "project": "support-bot",
        "model_config": config,
        "inputs": {"company": "Acme"},
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    data: dict[str, Any] = _post(client, "/chat", body)["data"][0]
    return data


def _session_logs(client: httpx.Client, project_id: str) -> tuple[str, str, str, str]:
    session_id = _post(client, "/sessions", {})["id"]
    question = "Plan a weekend in Lisbon and check the weather"
    root = _post(
        client,
        "/logs",
        {
            "project_id": project_id,
            "session_id": session_id,
            "config": {"provider": "mock", "model": "planner-1", "temperature": 0.3},
            "messages": [{"role": "user", "content": question}],
            "output": "I will check the weather first, then plan the days.",
            "prompt_tokens": 31,
            "output_tokens": 12,
            "duration": 0.84,
            "prompt_cost": 0.00031,
            "output_cost": 0.00024,
            "metadata": {"customer": "c-17", "channel": "web"},
        },
    )["id"]
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Lisbon", "days": 2}'},
    }
    child = _post(
        client,
        "/logs",
        {
            "project_id": project_id,
            "parent_id": root,
            "config": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0},
            "messages": [
                {"role": "system", "content": "Answer with the weather tool's data."},
                {"role": "user", "content": "What is the weather in Lisbon this weekend?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"sat": "sunny 24C"}'},
            ],
            "output": "Sunny and 24°C on Saturday: good for the Belém walk.",
            "prompt_tokens": 120,
            "output_tokens": 18,
            "duration": 1.31,
            "provider_request": {
                "url": "https://api.openai.com/v1/chat/completions",
                "headers": {"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET},
                "body": {"model": "gpt-4o-mini", "max_tokens": 300, "api_key": SECRET},
            },
            "provider_response": {
                "id": "chatcmpl-1",
                "usage": {"prompt_tokens": 120, "completion_tokens": 18},
            },
        },
    )["id"]
    grandchild = _post(
        client,
        "/logs",
        {
            "project_id": project_id,
            "parent_id": child,
            "config": {"provider": "mock", "model": "planner-1", "temperature": 0.3},
            "messages": [{"role": "user", "content": "Write the two-day plan"}],
            "output": "Day 1: Alfama and the castle. Day 2: Belém and the riverside.",
        },
    )["id"]
    return session_id, root, child, grandchild


@dataclass
class _Run:
    project_id: str
    dataset_id: str
    evaluation_id: str
    log_id: str


def _evaluation_run(client: httpx.Client, copied_log_ids: list[str]) -> _Run:
    """Project faq-bot: a dataset of two copied logs and one written datapoint, and a run the client
    evaluated with two evaluators: two datapoints logged and scored, the third not yet."""
    registered = _post(client, "/model-configs", {**V1, "project": "faq-bot"})
    project_id, config_id = registered["project_id"], registered["config"]["id"]
    dataset_id = _post(
        client,
        f"/projects/{project_id}/datasets",
        {"name": "faq-golden", "description": "Questions every support agent must answer right"},
    )["id"]
    _post(client, f"/datasets/{dataset_id}/datapoints", {"log_ids": copied_log_ids})
    written = {
        "inputs": {"company": "Acme"},
        "messages": [{"role": "user", "content": "Do you have a phone line?"}],
        "target": {"output": "Yes: call +351 210 000 000 on weekdays."},
    }
    _post(client, f"/datasets/{dataset_id}/datapoints", written)
    evaluators = [
        _post(
            client,
            "/evaluators",
            {
                "name": name,
                "description": description,
                "arguments_type": "target_required",
                "return_type": returns,
                "type": kind,
            },
        )["id"]
        for name, description, returns, kind in (
            ("exact-match", "The output equals the target", "boolean", "external"),
            ("helpfulness", "A reviewer's score from 1 to 5", "number", "human"),
        )
    ]
    evaluation_id = _post(
        client,
        f"/projects/{project_id}/evaluations",
        {
            "config_id": config_id,
            "dataset_id": dataset_id,
            "evaluator_ids": evaluators,
            "hl_generated": False,
            "name": "nightly",
        },
    )["id"]
    datapoints = client.get(f"/evaluations/{evaluation_id}/datapoints").json()["records"]
    log_ids = []
    for record, output, exact, helpful in zip(
        datapoints[:2],
        ("Open Settings, then Reset password.", "No refunds after 30 days."),
        (True, False),
        (5, 2),
        strict=True,
    ):
        body = {
            "datapoint_id": record["datapoint"]["id"],
            "log": {"output": output, "inputs": {"company": "Acme"}},
        }
        log_id = _post(client, f"/evaluations/{evaluation_id}/log", body)["id"]
        log_ids.append(log_id)
        for evaluator_id, value in zip(evaluators, (exact, helpful), strict=True):
            _post(
                client,
                f"/evaluations/{evaluation_id}/result",
                {"log_id": log_id, "evaluator_id": evaluator_id, "result": value},
            )
    return _Run(project_id, dataset_id, evaluation_id, log_ids[0])


def seed(server: Server) -> Seeded:
    with server.client() as client:
        questions = [
            "How do I reset my password?",
            "Can I change the email on my account?",
            "Do you ship to Portugal?",
            "What is your refund policy?",
            "My invoice shows the wrong VAT number",
        ]
        first = _chat(client, V1, questions[0])
        project_id = client.get("/logs/" + first["id"]).json()["project_id"]
        for text in questions[1:]:
            _chat(client, V1, text)
        tool_log = _chat(
            client,
            V2,
            "Where is my order A-1001?",
            tool_choice={"type": "function", "function": {"name": "get_order_status"}},
        )
        second = _chat(client, V2, "Thanks! And when does the sale end?")
        configs = client.get(f"/projects/{project_id}/configs").json()
        v1_id, v2_id = (view["config"]["id"] for view in configs)
        _post(
            client,
            f"/projects/{project_id}/feedback-types",
            {"type": "tone", "class": "select", "values": [{"value": "friendly"}, {"value": "curt"}]},
        )
        deployed = client.patch(f"/projects/{project_id}/deploy-config", json={"config_id": v1_id})
        assert deployed.status_code == 200, deployed.text
        _post(client, "/feedback", {"type": "rating", "value": "good", "data_id": first["id"]})
        _post(client, "/feedback", {"type": "rating", "value": "bad", "data_id": second["id"]})
        session_id, root, child, grandchild = _session_logs(client, project_id)
        run = _evaluation_run(client, [first["id"], tool_log["id"]])
        for text in ("Search: pricing page", "Search: API limits"):
            _post(
                client,
                "/chat",
                {
                    "project": "docs-search",
                    "model_config": {"provider": "mock", "model": "mock-2"},
                    "messages": [{"role": "user", "content": text}],
                },
            )

    other_key = server.create_key(org="other-org", name="other")
    with server.client(other_key) as other:
        other_log = _post(
            other,
            "/chat",
            {
                "project": "other-secret",
                "model_config": {"provider": "mock", "model": "mock-1"},
                "messages": [{"role": "user", "content": "private question"}],
            },
        )["data"][0]["id"]
        other_project = other.get("/logs/" + other_log).json()["project_id"]
    return Seeded(
        project_id=project_id,
        v1_id=v1_id,
        v2_id=v2_id,
        tool_log_id=tool_log["id"],
        session_id=session_id,
        root_log_id=root,
        child_log_id=child,
        grandchild_log_id=grandchild,
        other_project_id=other_project,
        other_log_id=other_log,
        other_key=other_key,
        faq_project_id=run.project_id,
        dataset_id=run.dataset_id,
        evaluation_id=run.evaluation_id,
        evaluation_log_id=run.log_id,
    )


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(tmp_path_factory.mktemp("ui-server"), LOOPGATE_ENVIRONMENTS="staging")
    with serving(server):
        yield server


@pytest.fixture(scope="session")
def seeded(ui_server: Server) -> Seeded:
    return seed(ui_server)


@pytest.fixture
def signed_in(ui_server: Server, seeded: Seeded) -> Iterator[httpx.Client]:
    """An HTTP client with the log browser's session cookie of the seeded organization."""
    with httpx.Client(base_url=ui_server.base, timeout=30.0, follow_redirects=False) as client:
        response = client.post("/ui/sign-in", data={"api_key": ui_server.api_key, "next": "/ui/projects"})
        assert response.status_code == 303
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: playwright's sync API keeps an event loop running in this thread while it is open,
    # and a test of another module that calls asyncio.run() must not find it.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, ui_server: Server, seeded: Seeded) -> Iterator[Any]:
    """A fresh browser context (no cookie) on the seeded server."""
    context = browser.new_context(viewport=VIEWPORT, base_url=ui_server.base)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def shoot(screenshot_dir: Path) -> Any:
    """shoot(page, name): a viewport screenshot; also kept in docs/screenshots when asked to."""

    def take(tab: Any, name: str) -> Path:
        path = screenshot_dir / f"{name}.png"
        tab.screenshot(path=str(path))
        assert path.stat().st_size > 5_000  # a rendered page, not a blank image
        if os.environ.get("LOOPGATE_UPDATE_SCREENSHOTS") == "1":
            target = ROOT / "docs" / "screenshots"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.name)
        return path

    return take


def sign_in(tab: Any, key: str) -> None:
    tab.goto("/ui/sign-in")
    tab.get_by_label("API key").fill(key)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url("**/ui/projects")
