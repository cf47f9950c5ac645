"""The log browser over plain HTTP (no browser): sign-in gate, cookie, CSRF, isolation, schema."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server
from tests.ui.conftest import Seeded


@pytest.fixture
def anonymous(ui_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_server.base, timeout=30.0, follow_redirects=False) as client:
        yield client


def _pages(seeded: Seeded) -> list[str]:
    return [
        "/ui/projects",
        f"/ui/projects/{seeded.project_id}",
        f"/ui/projects/{seeded.project_id}/logs?q=password",
        f"/ui/projects/{seeded.project_id}/sessions",
        f"/ui/projects/{seeded.project_id}/configs",
        f"/ui/logs/{seeded.child_log_id}",
        f"/ui/sessions/{seeded.session_id}",
        f"/ui/projects/{seeded.faq_project_id}/datasets",
        f"/ui/datasets/{seeded.dataset_id}",
        f"/ui/projects/{seeded.faq_project_id}/evaluations",
        f"/ui/evaluations/{seeded.evaluation_id}",
        "/ui/evaluators",
    ]


def test_every_page_without_the_cookie_redirects_to_sign_in(anonymous: httpx.Client, seeded: Seeded) -> None:
    for path in _pages(seeded):
        response = anonymous.get(path)
        assert response.status_code == 303, path
        location = response.headers["location"]
        assert location.startswith("/ui/sign-in?next="), path
        assert seeded.project_id not in response.text and "support-bot" not in response.text


def test_every_form_without_the_cookie_redirects_and_changes_nothing(
    anonymous: httpx.Client, ui_server: Server, seeded: Seeded
) -> None:
    forms = [
        f"/ui/logs/{seeded.root_log_id}/feedback",
        f"/ui/projects/{seeded.project_id}/deploy",
        f"/ui/projects/{seeded.project_id}/undeploy",
        "/ui/sign-out",
    ]
    for path in forms:
        response = anonymous.post(path, data={"fb:rating": "bad", "config_id": seeded.v1_id})
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/sign-in")
    with ui_server.client() as api:
        assert api.get(f"/logs/{seeded.root_log_id}").json()["feedback"] == []


def test_root_redirects_into_the_browser_and_sign_in_is_public(anonymous: httpx.Client) -> None:
    assert anonymous.get("/").headers["location"] == "/ui"
    assert anonymous.get("/ui").headers["location"] == "/ui/projects"
    page = anonymous.get("/ui/sign-in")
    assert page.status_code == 200
    assert '<label for="api_key">API key</label>' in page.text
    assert anonymous.get("/ui/static/style.css").headers["content-type"].startswith("text/css")
    assert anonymous.get("/ui/static/..%2Fsession.py").status_code == 404


def test_the_ui_is_not_in_the_openapi_schema(anonymous: httpx.Client) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert paths and not [path for path in paths if path == "/" or path.startswith("/ui")]


def test_a_wrong_key_is_refused(anonymous: httpx.Client) -> None:
    response = anonymous.post("/ui/sign-in", data={"api_key": "lg_not-a-key", "next": "/ui/projects"})
    assert response.status_code == 401
    assert "not valid" in response.text
    assert "set-cookie" not in response.headers


def test_the_cookie_is_signed_http_only_same_site_and_never_the_key(
    anonymous: httpx.Client, ui_server: Server
) -> None:
    response = anonymous.post("/ui/sign-in", data={"api_key": ui_server.api_key, "next": "//evil.example/x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/projects"  # never an off-site redirect
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/ui" in cookie
    assert ui_server.api_key not in cookie

    value = response.cookies["loopgate_ui"]
    anonymous.cookies.set("loopgate_ui", value, path="/ui")
    assert anonymous.get("/ui/projects").status_code == 200
    forged = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    anonymous.cookies.clear()
    anonymous.cookies.set("loopgate_ui", forged, path="/ui")
    assert anonymous.get("/ui/projects").status_code == 303


def test_the_cookie_is_secure_over_https_or_behind_a_tls_proxy(
    anonymous: httpx.Client, ui_server: Server
) -> None:
    form = {"api_key": ui_server.api_key, "next": "/ui/projects"}
    plain = anonymous.post("/ui/sign-in", data=form)
    assert "Secure" not in plain.headers["set-cookie"]  # plain HTTP: a Secure cookie would never come back
    proxied = anonymous.post("/ui/sign-in", data=form, headers={"X-Forwarded-Proto": "https"})
    assert proxied.status_code == 303 and "Secure" in proxied.headers["set-cookie"]


def test_forms_need_the_csrf_token_and_our_origin(
    signed_in: httpx.Client, ui_server: Server, seeded: Seeded
) -> None:
    path = f"/ui/logs/{seeded.root_log_id}/feedback"
    page = signed_in.get(f"/ui/logs/{seeded.root_log_id}").text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    assert signed_in.post(path, data={"fb:rating": "bad"}).status_code == 403
    foreign = signed_in.post(
        path, data={"fb:rating": "bad", "csrf": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    with ui_server.client() as api:
        assert api.get(f"/logs/{seeded.root_log_id}").json()["feedback"] == []

    accepted = signed_in.post(
        path, data={"fb:comment": "checked by hand", "csrf": token}, headers={"Origin": ui_server.base}
    )
    assert accepted.status_code == 303
    with ui_server.client() as api:
        feedback = api.get(f"/logs/{seeded.root_log_id}").json()["feedback"]
    assert [(item["type"], item["value"]) for item in feedback] == [("comment", "checked by hand")]


def test_another_organization_reads_as_not_found(signed_in: httpx.Client, seeded: Seeded) -> None:
    for path in (
        f"/ui/projects/{seeded.other_project_id}/logs",
        f"/ui/projects/{seeded.other_project_id}/configs",
        f"/ui/logs/{seeded.other_log_id}",
    ):
        response = signed_in.get(path)
        assert response.status_code == 404, path
        assert "private question" not in response.text and "other-secret" not in response.text
    assert "other-secret" not in signed_in.get("/ui/projects").text


def test_provider_secrets_never_reach_the_page(signed_in: httpx.Client, seeded: Seeded) -> None:
    from tests.ui.conftest import SECRET

    page = signed_in.get(f"/ui/logs/{seeded.child_log_id}").text
    assert SECRET not in page
    assert page.count("[redacted]") == 3  # Authorization, x-api-key, body.api_key
    assert "max_tokens" in page  # counters are not secrets


def test_revoking_a_key_ends_its_browser_sessions(ui_server: Server, seeded: Seeded) -> None:
    org = "revocation-org"
    key = ui_server.create_key(org=org, name="to-revoke")
    with httpx.Client(base_url=ui_server.base, timeout=30.0, follow_redirects=False) as browser:
        assert browser.post("/ui/sign-in", data={"api_key": key, "next": "/ui/projects"}).status_code == 303
        assert browser.get("/ui/projects").status_code == 200
        key_id = ui_server.cli("keys", "list", "--org", org).splitlines()[1].split()[0]
        ui_server.cli("keys", "revoke", key_id)
        after = browser.get("/ui/projects")
        assert after.status_code == 303 and after.headers["location"].startswith("/ui/sign-in")


def test_a_log_under_a_tool_config_is_shown(ui_server: Server, signed_in: httpx.Client) -> None:
    # A tool config has no model: its log's page, its project's list and its session's page each
    # raised on the missing field (a 500) before.
    with ui_server.client() as api:
        body = {
            "project": "tool-configs",
            "session_reference_id": "tool-session",
            "config": {"type": "tool", "name": "weather", "parameters": {}},
            "output": "sunny",
        }
        created = api.post("/logs", json=body).json()
    log = signed_in.get(f"/ui/logs/{created['id']}")
    assert log.status_code == 200 and "sunny" in log.text and "weather" in log.text
    listed = signed_in.get(f"/ui/projects/{created['project_id']}/logs")
    assert listed.status_code == 200 and created["id"] in listed.text and "weather" in listed.text
    session = signed_in.get(f"/ui/sessions/{created['session_id']}")
    assert session.status_code == 200 and created["id"] in session.text
