"""The log browser driven through Debian's chromium: what a person does, page by page."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Server
from tests.ui.conftest import SECRET, Seeded, sign_in
from tests.ui.test_evaluation_pages import _generated_run

# The page scrolls sideways when its content is wider than the window.
_PAGE_OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def test_sign_in_gate_wrong_key_and_sign_out(page: Any, ui_server: Server, shoot: Any) -> None:
    page.goto("/ui/projects")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    expect(page.get_by_label("API key")).to_be_focused()
    shoot(page, "sign-in")

    page.get_by_label("API key").fill("lg_wrong")
    page.get_by_label("API key").press("Enter")  # the keyboard alone signs in
    expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")
    assert page.context.cookies() == []

    page.get_by_label("API key").fill(ui_server.api_key)
    page.get_by_label("API key").press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/projects$"))
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ui_server.api_key not in cookie["value"]

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
    page.goto("/ui/projects")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))


def test_projects_list_and_log_search(page: Any, ui_server: Server, seeded: Seeded, shoot: Any) -> None:
    sign_in(page, ui_server.api_key)
    row = page.get_by_role("row").filter(has_text="support-bot")
    expect(row).to_contain_text("production")
    expect(row).to_contain_text(re.compile(r"\b10\b"))  # 7 chats + 3 session logs
    expect(page.get_by_role("row").filter(has_text="docs-search")).to_contain_text("2")
    expect(page.get_by_text("other-secret")).to_have_count(0)
    shoot(page, "projects")

    page.get_by_role("link", name="support-bot").click()
    logs = page.locator("table.logs tbody tr")
    expect(logs).to_have_count(10)
    # Newest first: the last session log tops the table.
    expect(logs.first).to_contain_text("Day 1: Alfama")
    expect(page.get_by_role("row").filter(has_text="reset my password")).to_contain_text("good")
    shoot(page, "logs")

    page.get_by_label("Search").fill("refund")
    page.get_by_role("button", name="Apply").click()
    expect(logs).to_have_count(1)
    expect(logs.first).to_contain_text("What is your refund policy?")

    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Config version").select_option(seeded.v2_id)
    page.get_by_label("Feedback").select_option("rating:bad")
    page.get_by_role("button", name="Apply").click()
    expect(logs).to_have_count(1)
    expect(logs.first).to_contain_text("when does the sale end")


def test_new_chat_appears_on_reload(page: Any, ui_server: Server, seeded: Seeded) -> None:
    sign_in(page, ui_server.api_key)
    page.goto(f"/ui/projects/{seeded.project_id}/logs?q=reload")
    expect(page.get_by_text("No log matches these filters")).to_be_visible()
    with ui_server.client() as api:
        body = {
            "project": "support-bot",
            "model_config": {"provider": "mock", "model": "mock-1"},
            "messages": [{"role": "user", "content": "a chat made after the page loaded (reload)"}],
        }
        assert api.post("/chat", json=body).status_code == 200
    page.reload()
    expect(page.locator("table.logs tbody tr")).to_have_count(1)


def test_log_with_tool_calls_is_rendered(page: Any, ui_server: Server, seeded: Seeded, shoot: Any) -> None:
    sign_in(page, ui_server.api_key)
    page.goto(f"/ui/logs/{seeded.child_log_id}")
    conversation = page.locator(".detail-main .conversation").first
    expect(conversation.locator(".role")).to_have_text(["system", "user", "assistant", "tool"])
    call = conversation.locator(".toolcall")
    expect(call).to_contain_text("get_weather")
    expect(call.locator("pre")).to_contain_text('"city": "Lisbon"')
    expect(conversation.locator(".msg-tool")).to_contain_text("result of call_weather_1")
    expect(page.locator(".output")).to_contain_text("Sunny and 24°C")

    request = page.locator("details", has_text="Provider request")
    request.locator("summary").click()
    expect(request.locator("pre")).to_contain_text("[redacted]")
    expect(request.locator("pre")).to_contain_text("max_tokens")
    assert SECRET not in page.content()
    expect(page.get_by_role("link", name=seeded.root_log_id)).to_have_attribute(
        "href", f"/ui/logs/{seeded.root_log_id}"
    )
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, "log")

    # A generated log whose answer is a tool call (mock provider, tool_choice forced).
    page.goto(f"/ui/logs/{seeded.tool_log_id}")
    expect(page.locator(".output .toolcall")).to_contain_text("get_order_status")
    expect(page.locator(".output .toolcall pre")).to_contain_text('"order_id"')


def test_session_tree(page: Any, ui_server: Server, seeded: Seeded, shoot: Any) -> None:
    sign_in(page, ui_server.api_key)
    page.goto(f"/ui/logs/{seeded.child_log_id}")
    page.locator(".facts").get_by_role("link", name=seeded.session_id).click()
    expect(page).to_have_url(re.compile(f"/ui/sessions/{seeded.session_id}"))

    root = page.locator(f"ul.tree.root > li#{seeded.root_log_id}")
    child = root.locator(f"> ul.tree > li#{seeded.child_log_id}")
    grandchild = child.locator(f"> ul.tree > li#{seeded.grandchild_log_id}")
    expect(grandchild).to_have_count(1)
    expect(child.locator("> details")).to_have_attribute("open", "")  # the log we came from

    root_link = root.locator("> details").get_by_role("link", name=f"Open log {seeded.root_log_id}")
    expect(root_link).to_be_hidden()
    root.locator("> details > summary").focus()
    page.keyboard.press("Enter")  # a node opens from the keyboard
    expect(root_link).to_be_visible()
    page.get_by_role("button", name="Expand all").click()
    expect(grandchild.locator(".node-body")).to_contain_text("Day 1: Alfama")
    shoot(page, "session")

    root_link.click()
    expect(page).to_have_url(re.compile(f"/ui/logs/{seeded.root_log_id}"))


def test_an_evaluation_run_and_its_dataset(page: Any, ui_server: Server, seeded: Seeded, shoot: Any) -> None:
    sign_in(page, ui_server.api_key)
    page.get_by_role("link", name="faq-bot").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Evaluations").click()
    expect(page).to_have_url(re.compile(f"/ui/projects/{seeded.faq_project_id}/evaluations$"))
    run = page.get_by_role("row").filter(has_text="nightly")
    expect(run).to_contain_text("running")
    expect(run).to_contain_text("exact-match 0.5")

    run.get_by_role("link", name="nightly").click()
    expect(page).to_have_url(re.compile(f"/ui/evaluations/{seeded.evaluation_id}$"))
    expect(page.get_by_text("2 of 3 datapoints have a log")).to_be_visible()
    rows = page.locator("table.run tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("true")
    expect(rows.nth(1)).to_contain_text("false")
    expect(rows.nth(2)).to_contain_text("no log yet")
    shoot(page, "evaluation")

    rows.nth(0).get_by_role("link", name="Open Settings, then Reset password.").click()
    expect(page).to_have_url(re.compile(f"/ui/logs/{seeded.evaluation_log_id}$"))
    page.go_back()

    page.locator(".facts").get_by_role("link", name="faq-golden").click()
    expect(page).to_have_url(re.compile(f"/ui/datasets/{seeded.dataset_id}$"))
    points = page.locator("table.datapoints tbody tr")
    expect(points).to_have_count(3)
    system = points.nth(0).get_by_text("You are a concise support agent for Acme.")
    expect(system).to_be_hidden()  # the conversation opens on demand
    points.nth(0).locator("summary").click()
    expect(system).to_be_visible()
    shoot(page, "dataset")


def test_feedback_from_the_log_page(page: Any, ui_server: Server, seeded: Seeded, shoot: Any) -> None:
    sign_in(page, ui_server.api_key)
    page.goto(f"/ui/logs/{seeded.grandchild_log_id}")
    form = page.locator("form.feedback-form")
    form.get_by_label("bad").check()
    form.get_by_label("tone").select_option("curt")
    form.get_by_label("copied").check()
    form.get_by_label("Comment").fill("Too short: <b>needs</b> opening hours")
    form.get_by_role("button", name="Save feedback").click()

    expect(page.get_by_role("status")).to_have_text("Feedback saved.")
    listed = page.locator(".feedback-list")
    expect(listed).to_contain_text("Too short: <b>needs</b> opening hours")  # shown as text, escaped
    expect(listed).to_contain_text("curt")
    expect(listed).to_contain_text("copied")
    expect(form.get_by_label("bad")).to_be_checked()
    shoot(page, "feedback")

    with ui_server.client() as api:
        stored = api.get(f"/logs/{seeded.grandchild_log_id}").json()["feedback"]
    assert {item["type"]: item["value"] for item in stored} == {
        "rating": "bad",
        "action": ["copied"],
        "tone": "curt",
        "comment": "Too short: <b>needs</b> opening hours",
    }
    page.goto(f"/ui/projects/{seeded.project_id}/logs?feedback=rating:bad")
    expect(page.locator("table.logs tbody tr").filter(has_text="two-day plan")).to_contain_text("bad")


def test_config_diff_and_deploy(page: Any, ui_server: Server, seeded: Seeded, shoot: Any) -> None:
    sign_in(page, ui_server.api_key)
    page.goto(f"/ui/projects/{seeded.project_id}/configs")
    page.get_by_label("Left").select_option(seeded.v1_id)
    page.get_by_label("Right").select_option(seeded.v2_id)
    page.get_by_role("button", name="Compare").click()
    diff = page.locator("table.diff")
    expect(diff.locator("thead")).to_have_text(re.compile(r"v1.*v2"))
    changed = diff.locator("tr.d-changed, tr.d-added")
    expect(changed.filter(has_text="temperature")).to_have_count(1)
    expect(changed.filter(has_text="get_order_status").first).to_be_visible()
    expect(diff.locator("tr.d-same").filter(has_text='"provider": "mock"')).to_have_count(1)

    # Same version on both sides: nothing differs.
    page.get_by_label("Right").select_option(seeded.v1_id)
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_text("identical parameters")).to_be_visible()
    page.get_by_label("Right").select_option(seeded.v2_id)
    page.get_by_role("button", name="Compare").click()

    environments = page.locator("section", has_text="Environments")
    production = environments.get_by_role("row").filter(has_text="production")
    staging = environments.get_by_role("row").filter(has_text="staging")
    expect(production).to_contain_text("v1")  # deployed by the seed through the API
    expect(staging).to_contain_text("nothing deployed")
    version = page.locator(f"tr#{seeded.v2_id}")
    version.get_by_label("Environment for v2").select_option(label="staging")
    version.get_by_role("button", name="Deploy v2").click()
    expect(page.get_by_role("status")).to_have_text("Deployed.")
    expect(staging).to_contain_text("v2")
    expect(production).to_contain_text("v1")
    expect(page.locator(f"tr#{seeded.v2_id}")).to_contain_text("staging")
    shoot(page, "configs")
    page.goto(f"/ui/projects/{seeded.project_id}/configs?a={seeded.v1_id}&b={seeded.v2_id}#diff")
    expect(diff.locator("tr.d-changed").filter(has_text="max_tokens")).to_have_count(1)
    shoot(page, "config-diff")
    with ui_server.client() as api:
        active = api.get(f"/projects/{seeded.project_id}/active-config", params={"environment": "staging"})
    assert active.json()["config"]["id"] == seeded.v2_id

    page.get_by_role("button", name="Undeploy from staging").click()
    expect(page.get_by_role("status")).to_have_text("Removed from the environment.")
    expect(staging).to_contain_text("nothing deployed")
    with ui_server.client() as api:
        gone = api.get(f"/projects/{seeded.project_id}/active-config", params={"environment": "staging"})
    assert gone.status_code == 404


def test_another_organizations_project_is_invisible(page: Any, ui_server: Server, seeded: Seeded) -> None:
    sign_in(page, ui_server.api_key)
    expect(page.get_by_text("other-secret")).to_have_count(0)
    response = page.goto(f"/ui/projects/{seeded.other_project_id}/logs")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert page.goto(f"/ui/logs/{seeded.other_log_id}").status == 404

    # ...while its own key sees it.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, seeded.other_key)
    expect(page.get_by_role("link", name="other-secret")).to_be_visible()
    expect(page.get_by_text("support-bot")).to_have_count(0)


def test_a_phone_sized_window(page: Any, ui_server: Server, seeded: Seeded) -> None:
    """At 390 px the log's side panel goes under its conversation, the header and the tabs wrap, and a
    wide table scrolls inside its own box: the page itself never scrolls sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, ui_server.api_key)

    def within_window(locator: Any) -> None:
        box = locator.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box

    assert page.evaluate(_PAGE_OVERFLOW) <= 0
    within_window(page.get_by_role("button", name="Find"))
    within_window(page.get_by_role("button", name="Sign out"))

    page.goto(f"/ui/projects/{seeded.project_id}/logs")
    assert page.evaluate(_PAGE_OVERFLOW) <= 0
    scroller = page.locator(".table-scroll").filter(has=page.locator("table.logs"))
    assert scroller.evaluate("box => box.scrollWidth > box.clientWidth")  # it scrolls, not the page
    within_window(page.get_by_role("navigation", name="Project").get_by_role("link", name="Evaluations"))

    page.goto(f"/ui/logs/{seeded.child_log_id}")
    assert page.evaluate(_PAGE_OVERFLOW) <= 0
    conversation = page.locator(".detail-main .conversation").first.bounding_box()
    facts = page.locator(".detail-side").bounding_box()
    assert conversation is not None and facts is not None
    assert conversation["width"] >= 300
    assert facts["y"] >= conversation["y"] + conversation["height"]  # under it, not over it
    within_window(page.get_by_role("button", name="Sign out"))
    within_window(page.get_by_role("button", name="Save feedback"))


def test_a_judges_text_answers_wrap_in_the_run_table(page: Any, ui_server: Server) -> None:
    long_prompt = "Name the category of this answer and explain at length why it belongs there. " * 4
    with ui_server.client() as api:
        run = _generated_run(
            api,
            "wrapping-judge",
            [{"inputs": {"q": "Where do I reset my password?"}, "target": {}}],
            [("category", "select", long_prompt + "{{log.inputs.q}}"), ("ok", "boolean", "true")],
        )
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, ui_server.api_key)
    page.goto(f"/ui/evaluations/{run.evaluation}")
    expect(page.locator("table.run")).to_contain_text("This is a mock response to: Name the category")
    assert page.evaluate(_PAGE_OVERFLOW) <= 0
    table = page.locator("table.run").bounding_box()
    assert table is not None and table["x"] + table["width"] <= 1440
    answer = page.locator("table.run .chip-text")
    assert (answer.get_attribute("title") or "").endswith("Where do I reset my password?")  # the whole text
    output = page.locator("table.run tbody tr").first.locator("td").nth(3)
    expect(output).to_contain_text("Where do I reset")
    width = output.bounding_box()
    assert width is not None and width["width"] >= 150  # the other columns keep room to be read
