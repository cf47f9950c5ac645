"""What the pages say and link to, over plain HTTP: the feedback form records only what changed, failed
logs in a session tree, pages past the end of a list, number formats and plurals, the project a session
was opened from, the list filters a log page links back to, and the browser's own "Not found" page."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from tests.conftest import Server
from tests.ui.conftest import Seeded

MOCK = {"provider": "mock", "model": "mock-1"}


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _crumbs(page: str) -> list[tuple[str, str]]:
    """(href, label) of each breadcrumb link."""
    nav = page.split('<nav class="crumbs"', 1)[1].split("</nav>", 1)[0]
    return [
        (html.unescape(href), label) for href, label in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', nav)
    ]


def _log(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/logs", json={"config": MOCK, **body})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def _form(page: str) -> dict[str, Any]:
    """The feedback form as a browser would send it unchanged: its hidden fields, checked radios and boxes,
    selected options and the comment's text."""
    form = page.split('<form method="post" action="/ui/logs/', 1)[1].split("</form>", 1)[0]
    fields: dict[str, Any] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        fields[name] = html.unescape(value)
    for name, value in re.findall(
        r'<input type="(?:radio|checkbox)" name="([^"]+)" value="([^"]*)" checked', form
    ):
        fields.setdefault(name, []).append(html.unescape(value))
    for name, options in re.findall(r'<select id="[^"]+" name="([^"]+)">(.*?)</select>', form, re.S):
        chosen = re.findall(r'<option value="([^"]*)" selected>', options)
        fields[name] = html.unescape(chosen[0]) if chosen else ""
    for name, text in re.findall(
        r'<textarea id="[^"]+" name="([^"]+)" rows="3">(.*?)</textarea>', form, re.S
    ):
        fields[name] = html.unescape(text)
    return fields


def _stored(ui_server: Server, log_id: str) -> list[tuple[str, Any]]:
    with ui_server.client() as api:
        return [(item["type"], item["value"]) for item in api.get(f"/logs/{log_id}").json()["feedback"]]


def test_the_feedback_form_shows_every_value_and_records_only_changes(
    signed_in: httpx.Client, ui_server: Server, seeded: Seeded
) -> None:
    with ui_server.client() as api:
        log_id = _log(api, project_id=seeded.project_id, output="feedback twice")["id"]
    path = f"/ui/logs/{log_id}"
    first = _form(signed_in.get(path).text)
    first.update({"fb:rating": "bad", "fb:tone": "curt", "fb:action": ["copied", "saved"]})
    first["fb:comment"] = "Too short"
    saved = signed_in.post(f"{path}/feedback", data=first)
    assert saved.headers["location"].endswith("notice=saved#feedback")

    # The page now shows each type's value; sent back untouched, it records nothing.
    page = signed_in.get(path).text
    form = _form(page)
    assert form["fb:rating"] == ["bad"] and form["fb:tone"] == "curt"
    assert form["fb:action"] == ["copied", "saved"] and form["fb:comment"] == "Too short"
    unchanged = signed_in.post(f"{path}/feedback", data=form)
    assert unchanged.headers["location"].endswith("notice=unchanged#feedback")
    assert "every value is the one already recorded" in signed_in.get(unchanged.headers["location"]).text

    # Only the comment changed: only the comment is recorded, not the rating again.
    signed_in.post(f"{path}/feedback", data={**form, "fb:comment": "Fine after all"})
    # A stale form (the one read before that comment) replayed: the rating, tone and labels are compared
    # with what is stored now, and the comment it holds is a change back.
    signed_in.post(f"{path}/feedback", data={**first, "fb:action": ["saved", "copied"]})
    stored = _stored(ui_server, log_id)
    assert sorted(stored[:4]) == [
        ("action", ["copied", "saved"]),
        ("comment", "Too short"),
        ("rating", "bad"),
        ("tone", "curt"),
    ]
    assert stored[4:] == [("comment", "Fine after all"), ("comment", "Too short")]
    # An empty form is still "nothing to save", and a cleared control clears nothing.
    empty = signed_in.post(f"{path}/feedback", data={"csrf": form["csrf"]})
    assert empty.headers["location"].endswith("notice=empty#feedback")
    assert len(_stored(ui_server, log_id)) == 6


def test_a_failed_log_in_a_session_tree_is_marked_as_failed(
    signed_in: httpx.Client, ui_server: Server
) -> None:
    with ui_server.client() as api:
        session = api.post("/sessions", json={}).json()["id"]
        ok = _log(api, project="failing-session", session_id=session, output="all good")
        failed = _log(
            api, project="failing-session", session_id=session, parent_id=ok["id"], error="upstream 503"
        )
    page = signed_in.get(f"/ui/sessions/{session}").text
    node = page.split(f'id="{failed["id"]}"', 1)[1].split("</summary>", 1)[0]
    assert '<span class="chip fb-bad" title="Failed">error</span>' in node and "upstream 503" in node
    assert f'<li class="node errored" id="{failed["id"]}"' in page
    healthy = page.split(f'id="{ok["id"]}"', 1)[1].split("</summary>", 1)[0]
    assert "fb-bad" not in healthy and "all good" in healthy
    # The log list marks it with the same chip.
    listed = signed_in.get(f"/ui/projects/{failed['project_id']}/logs").text
    assert '<span class="chip fb-bad" title="Failed">error</span>' in listed


def test_a_page_past_the_end_says_so_and_links_back(
    signed_in: httpx.Client, ui_server: Server, seeded: Seeded
) -> None:
    with ui_server.client() as api:
        project = _log(api, project="fifty-one", output="log 0")["project_id"]
        for number in range(1, 51):
            _log(api, project_id=project, output=f"log {number}")
        empty = api.post("/projects", json={"name": "never-logged"}).json()["id"]
    past = signed_in.get(f"/ui/projects/{project}/logs", params={"sort": "oldest", "page": 7}).text
    assert "Page 7 is past the end of this list." in _text(past)
    assert "No logs in this project yet" not in past
    assert f'href="/ui/projects/{project}/logs?sort=oldest&amp;page=2">Go to the last page (2)</a>' in past
    assert f'href="/ui/projects/{project}/logs?sort=oldest">the first page</a>' in past
    last = signed_in.get(f"/ui/projects/{project}/logs", params={"page": 2, "sort": "oldest"})
    assert "log 50" in last.text
    # Filtered, nothing is counted: the link is to the first page.
    filtered = signed_in.get(f"/ui/projects/{project}/logs", params={"page": 3, "q": "log"}).text
    assert f'<a href="/ui/projects/{project}/logs?q=log">Go to the first page</a>' in filtered
    # A project without logs keeps its own message, on any page.
    for number in (1, 4):
        page = signed_in.get(f"/ui/projects/{empty}/logs", params={"page": number}).text
        assert "No logs in this project yet." in page and "past the end" not in page
    # The other paged lists say the same.
    for path in ("/ui/projects", f"/ui/projects/{seeded.project_id}/sessions"):
        assert "Page 40 is past the end of this list." in _text(signed_in.get(path, params={"page": 40}).text)


def test_numbers_are_formatted_and_counts_pluralised(signed_in: httpx.Client, ui_server: Server) -> None:
    with ui_server.client() as api:
        session = api.post("/sessions", json={}).json()["id"]
        big = _log(
            api,
            project="big-numbers",
            session_id=session,
            output="expensive",
            prompt_tokens=1234567,
            output_tokens=98765,
            duration=12345.678,
            prompt_cost=1234.5,
            output_cost=0.00001,
        )
    page = _text(signed_in.get(f"/ui/logs/{big['id']}").text)
    assert "Tokens 1,234,567 in · 98,765 out" in page
    assert "Latency 12,346 s" in page and "Cost $1,234.50" in page
    assert "1 log ·" in page  # the project header: one log, not "1 logs"
    listed = signed_in.get(f"/ui/projects/{big['project_id']}/logs").text
    row = listed.split(big["id"], 1)[1].split("</tr>")[0]
    assert "1,333,332" in row and "12,346 s" in row and "$1,234.50" in row
    assert "1 log ·" in _text(signed_in.get(f"/ui/sessions/{session}").text)
    sessions = _text(signed_in.get(f"/ui/projects/{big['project_id']}/sessions").text)
    assert "1 session." in sessions


def test_a_session_names_the_project_it_was_opened_from(
    signed_in: httpx.Client, ui_server: Server, seeded: Seeded
) -> None:
    with ui_server.client() as api:
        session = api.post("/sessions", json={}).json()["id"]
        root = _log(api, project="crumb-alpha", session_id=session, output="first")
        child = _log(api, project="crumb-zulu", session_id=session, parent_id=root["id"], output="second")
    alpha, zulu = root["project_id"], child["project_id"]
    listed = signed_in.get(f"/ui/projects/{zulu}/sessions").text
    assert f'href="/ui/sessions/{session}?project={zulu}"' in listed
    assert _crumbs(signed_in.get(f"/ui/sessions/{session}", params={"project": zulu}).text)[1] == (
        f"/ui/projects/{zulu}/sessions",
        "crumb-zulu",
    )
    # A log's link to its session names the log's project.
    log_page = signed_in.get(f"/ui/logs/{child['id']}").text
    assert f'href="/ui/sessions/{session}?log={child["id"]}&amp;project={zulu}#{child["id"]}"' in log_page
    # Nothing, or a project the session has no log in (another organization's included): the first one.
    for project in ("", seeded.project_id, seeded.other_project_id, "<b>"):
        page = signed_in.get(f"/ui/sessions/{session}", params={"project": project}).text
        assert _crumbs(page)[1] == (f"/ui/projects/{alpha}/sessions", "crumb-alpha")


def test_a_log_page_links_back_to_the_filtered_list_it_came_from(
    signed_in: httpx.Client, seeded: Seeded
) -> None:
    listing = f"/ui/projects/{seeded.project_id}/logs"
    table = signed_in.get(listing, params={"q": "password", "sort": "oldest", "model": "mock-1"}).text
    (link,) = re.findall(r'href="(/ui/logs/[^"]+)"', table)
    page = signed_in.get(html.unescape(link)).text
    back = f"{listing}?q=password&model=mock-1&sort=oldest"
    assert _crumbs(page)[1] == (back, "support-bot")
    # The feedback form carries it, so the page it redirects to links back the same way.
    form = _form(page)
    assert form["list"] == "q=password&model=mock-1&sort=oldest"
    saved = signed_in.post(
        link.split("?")[0] + "/feedback", data={**form, "fb:comment": "from a filtered list"}
    )
    assert _crumbs(signed_in.get(saved.headers["location"]).text)[1] == (back, "support-bot")
    # Only the table's own parameters, re-encoded: the link stays on this project's list, whatever is sent.
    log_path = f"/ui/logs/{seeded.root_log_id}"
    hostile = '//evil.example/x&next=https://evil.example&q="><script>alert(1)</script>&page=abc'
    page = signed_in.get(log_path, params={"list": hostile}).text
    href, _ = _crumbs(page)[1]
    assert href == f"{listing}?q=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
    assert "<script>alert(1)" not in page and "evil.example" not in page
    assert _crumbs(signed_in.get(log_path).text)[1] == (listing, "support-bot")


def test_an_unknown_address_is_the_browsers_not_found_page(
    signed_in: httpx.Client, ui_server: Server
) -> None:
    for path in ("/ui/no/such/page", "/ui/projectz", "/ui/logs/data_x/nothing"):
        response = signed_in.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in response.text and "Sign out" in response.text
    with httpx.Client(base_url=ui_server.base, timeout=30.0) as anonymous:
        response = anonymous.get("/ui/no/such/page")
        assert response.status_code == 404 and "<h1>Not found</h1>" in response.text
        assert "Sign out" not in response.text
        api = anonymous.get("/v4/no/such/route")
        assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
    posted = signed_in.post("/ui/projects")  # a page that takes no form
    assert posted.status_code == 405 and "<h1>Not allowed here</h1>" in posted.text
    slash = signed_in.get("/ui/projects/?q=x")  # as before: a trailing slash is dropped
    assert slash.status_code == 307 and slash.headers["location"] == "/ui/projects?q=x"
