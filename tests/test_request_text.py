"""Text no store can hold is refused with a 422 in the v4 shape, on SQLite and PostgreSQL alike, never a 500:
lone surrogate escapes (what JavaScript's JSON.stringify makes of a string cut inside an emoji) and bytes
that are not UTF-8, on every route; the same escape in a ``.prompt`` file's front matter; the NUL character
(PostgreSQL's text cannot hold it) in a body, a path or a query parameter; an integer outside 64 bits
(orjson cannot write it into a log). At the OpenAI door these are a 400.

Found in an API-conformance audit (schemathesis, and probes around its findings): these requests reached
SQLite / PostgreSQL, or orjson writing a log or a response, and failed there with a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.helpers import MOCK_CONFIG, chat_body, db_rows, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")

CUT = "\udc00"  # a lone surrogate: json.dumps writes it as the escape "\\udc00", as JSON.stringify does


def send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    """``body`` as JSON text (ASCII, every non-ASCII character escaped), or as the bytes given."""
    content = body if isinstance(body, bytes) else json.dumps(body)
    return client.request(method, path, content=content, headers={"content-type": "application/json"})


def assert_json_invalid(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][0] == "body" and error["type"] == "json_invalid", error


@pytest.fixture
def project(client: httpx.Client) -> dict[str, Any]:
    created: dict[str, Any] = client.post("/projects", json={"name": unique("text")}).json()
    return created


COMPLETION = {"model_config": {**MOCK_CONFIG, "prompt_template": "Say {{x}}"}, "inputs": {"x": f"a{CUT}"}}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/projects", {"name": f"cut{CUT}"}),
        ("POST", "/completion", {"project": "PROJECT", **COMPLETION}),
        ("POST", "/model-configs/serialize", {**MOCK_CONFIG, "model": f"m{CUT}"}),
        ("POST", "/logs", {"project": "PROJECT", "config": MOCK_CONFIG, "output": CUT}),
        ("PATCH", "/projects/ID", {"name": CUT}),
    ],
)
def test_a_lone_surrogate_is_a_422(
    client: httpx.Client, project: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> None:
    body = {key: project["name"] if value == "PROJECT" else value for key, value in body.items()}
    assert_json_invalid(send(client, method, path.replace("ID", project["id"]), body))
    # nothing was renamed or logged
    assert client.get(f"/projects/{project['id']}").json()["name"] == project["name"]
    assert client.get("/logs", params={"project_id": project["id"]}).json()["total"] == 0


def test_a_body_that_is_not_utf8_is_a_422_like_any_other_invalid_json(client: httpx.Client) -> None:
    # FastAPI answered these with a bare 400 "There was an error parsing the body".
    assert_json_invalid(send(client, "POST", "/projects", b'{"name": "\xff\xfe"}'))
    assert_json_invalid(send(client, "POST", "/feedback", b'{"type": "\xc3"}'))
    assert_json_invalid(send(client, "POST", "/chat", b'{"project": "\xff"}'))  # the fast lane's


def test_a_surrogate_pair_is_text_like_any_other(client: httpx.Client) -> None:
    # An emoji escaped as its two surrogates (JSON.stringify's way) is one character, not an error.
    body = {"project": unique("text"), "config": MOCK_CONFIG, "output": "\U0001f600"}
    assert '"\\ud83d\\ude00"' in json.dumps(body)
    created = send(client, "POST", "/logs", body)
    assert created.status_code == 200, created.text
    assert client.get(f"/logs/{created.json()['id']}").json()["output"] == "\U0001f600"


def test_a_lone_surrogate_escape_in_a_prompt_file_is_a_422(client: httpx.Client) -> None:
    # YAML decodes "\udc00" in a double-quoted scalar to a lone surrogate, which no JSON encoder takes.
    text = '---\nmodel: "gpt-4o\\udc00"\n---\n<system>Hi</system>\n'
    response = client.post("/model-configs/deserialize", json={"config": text})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "config"] and "surrogates" in error["msg"]
    readable = client.post("/model-configs/deserialize", json={"config": text.replace("\\udc00", "")})
    assert readable.status_code == 200 and readable.json()["model"] == "gpt-4o"


def test_the_same_requests_without_them_are_answered(client: httpx.Client) -> None:
    """The bodies above, minus the offending character: each route serves them (the 422s are not a refusal
    of the route itself)."""
    name = unique("text")
    assert client.post("/projects", json={"name": name}).status_code == 201
    completion = {"project": name, "model_config": {**MOCK_CONFIG, "prompt_template": "Say {{x}}"}}
    assert client.post("/completion", json={**completion, "inputs": {"x": "hi"}}).status_code == 200
    assert client.post("/model-configs/serialize", json=MOCK_CONFIG).status_code == 200


# -- the NUL character ------------------------------------------------------------------------------------


def assert_nul_refused(response: httpx.Response, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"loc": loc, "msg": "Text must not contain the NUL character (U+0000)", "type": "value_error"}
    ]


NAME = "@name@"  # replaced by a project name of the test's own
CHAT = {"project": NAME, "model_config": MOCK_CONFIG, "messages": []}
LOG = {"project": NAME, "config": MOCK_CONFIG}
COMPLETE = {"project": NAME, "model_config": {**MOCK_CONFIG, "prompt_template": "{{x}}"}}


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/chat", {**CHAT, "messages": [{"role": "user", "content": "a\x00b"}]}, ["messages", 0, "content"]),
        ("/chat", {**CHAT, "metadata": {"k\x00": 1}}, ["metadata", "k\x00"]),
        ("/chat", {**CHAT, "session_reference_id": "s\x00"}, ["session_reference_id"]),
        ("/completion", {**COMPLETE, "inputs": {"x": "\x00"}}, ["inputs", "x"]),
        ("/logs", {**LOG, "output": "\x00"}, ["output"]),
        ("/logs", [LOG, {**LOG, "inputs": {"q": "\x00"}}], [1, "inputs", "q"]),
        ("/projects", {"name": f"{NAME}\x00"}, ["name"]),
    ],
)
def test_a_nul_character_in_a_body_is_a_422_naming_it(
    client: httpx.Client, server: Server, path: str, body: Any, loc: list[Any]
) -> None:
    name = unique("nul")
    response = send(client, "POST", path, json.dumps(body).replace(NAME, name).encode())
    assert_nul_refused(response, ["body", *loc])
    assert not db_rows(server.database, "SELECT id FROM projects WHERE name = ?", name)  # nothing stored


def test_a_nul_character_in_a_path_or_query_parameter_is_a_422(client: httpx.Client) -> None:
    assert_nul_refused(client.get("/logs/data_%00"), ["path", "id"])
    assert_nul_refused(client.get("/projects", params={"filter": "a\x00"}), ["query", "filter"])
    assert_nul_refused(client.get("/logs", params={"project_id": "pr_\x00"}), ["query", "project_id"])


def test_a_nul_character_at_the_openai_door_is_a_400_naming_it(server: Server) -> None:
    headers = {"X-API-KEY": server.api_key, "X-Loopgate-Project": unique("nul")}
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "a\x00"}]}
    response = httpx.post(f"{server.base}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages[0].content"


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client: httpx.Client) -> None:
    # The JSON text has "\\u0000": a backslash, then the letters u0000. Only a real NUL is refused.
    body = {"project": unique("nul"), "config": MOCK_CONFIG, "output": "C:\\u0000"}
    assert "\\\\u0000" in json.dumps(body)
    created = send(client, "POST", "/logs", body)
    assert created.status_code == 200, created.text
    assert client.get(f"/logs/{created.json()['id']}").json()["output"] == "C:\\u0000"


# -- integers beyond 64 bits ---------------------------------------------------------------------------------

HUGE = "Integers must lie between -2**63 and 2**64-1 (64 bits)"


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/chat", {**CHAT, "metadata": {"trace": uuid.uuid4().int}}, ["metadata", "trace"]),
        ("/chat", {**CHAT, "model_config": {**MOCK_CONFIG, "seed": 2**64}}, ["model_config", "seed"]),
        ("/chat", {**CHAT, "inputs": {"n": -(2**63) - 1}}, ["inputs", "n"]),
        ("/logs", {**LOG, "metadata": {"big": [1, 2**70]}}, ["metadata", "big", 1]),
        ("/completion", {**COMPLETE, "inputs": {"x": 10**30}}, ["inputs", "x"]),
    ],
)
def test_an_integer_beyond_64_bits_is_a_422_naming_it(
    client: httpx.Client, server: Server, path: str, body: Any, loc: list[Any]
) -> None:
    """The fast lane (/chat) answered these with a 500 (orjson cannot write them into the log); the other
    routes read them as floats and stored 1e+30 for the integer sent."""
    name = unique("huge")
    response = send(client, "POST", path, json.dumps(body).replace(NAME, name).encode())
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [{"loc": ["body", *loc], "msg": HUGE, "type": "value_error"}]
    assert not db_rows(server.database, "SELECT id FROM projects WHERE name = ?", name)


def test_integers_at_the_64_bit_bounds_are_kept_exactly(client: httpx.Client) -> None:
    metadata = {"top": 2**64 - 1, "bottom": -(2**63), "text": "1" * 40}
    answered = client.post("/chat", json=chat_body(unique("huge"), metadata=metadata))
    assert answered.status_code == 200, answered.text
    assert client.get(f"/logs/{answered.json()['data'][0]['id']}").json()["metadata"] == metadata


def test_an_integer_beyond_64_bits_at_the_openai_door_is_a_400_naming_it(server: Server) -> None:
    headers = {"X-API-KEY": server.api_key, "X-Loopgate-Project": unique("huge")}
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}], "seed": 2**64}
    response = httpx.post(f"{server.base}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "seed"


# -- nesting ------------------------------------------------------------------------------------------------

DEEP = "JSON must not nest objects and arrays more than 200 levels deep"


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/logs", {**LOG, "metadata": nested(300)}, ["metadata", *["a"] * 199]),
        (
            "/completion",
            {**COMPLETE, "inputs": {"x": "y", "deep": nested(260)}},
            ["inputs", "deep", *["a"] * 198],
        ),
        ("/model-configs", {**MOCK_CONFIG, "project": NAME, "other": nested(250)}, ["other", *["a"] * 199]),
    ],
)
def test_a_body_nested_too_deep_is_a_422_naming_where(
    client: httpx.Client, server: Server, path: str, body: Any, loc: list[Any]
) -> None:
    """orjson read these but could not write their log or answer (254 levels at most): a 500, after the
    provider had been called on the generation routes."""
    name = unique("deep")
    response = send(client, "POST", path, json.dumps(body).replace(NAME, name).encode())
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [{"loc": ["body", *loc], "msg": DEEP, "type": "value_error"}]
    assert not db_rows(server.database, "SELECT id FROM projects WHERE name = ?", name)


def test_a_body_nested_200_levels_is_answered(client: httpx.Client) -> None:
    metadata = nested(198)  # the body, then metadata, then 198 levels: 200 in all
    answered = client.post("/logs", json={**LOG, "project": unique("deep"), "metadata": metadata})
    assert answered.status_code == 200, answered.text
    assert client.get(f"/logs/{answered.json()['id']}").json()["metadata"] == metadata
