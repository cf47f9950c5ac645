"""Pure parts of the log browser: secret redaction, the config diff, the session tree, error pages."""

import logging
import sqlite3

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from loopgate.ui.diff import changed_count, pretty_json, side_by_side
from loopgate.ui.redact import REDACTED, is_secret_key, redact
from loopgate.ui.render import cost, dollars, plural, seconds, thousands
from loopgate.ui.routing import PageRoute
from loopgate.ui.views import message_view, session_tree


def test_secret_keys_are_redacted_at_any_depth() -> None:
    document = {
        "headers": {"Authorization": "Bearer sk-1", "X-API-KEY": "k", "content-type": "application/json"},
        "body": {
            "model": "gpt-4o",
            "max_tokens": 100,
            "api_key": "sk-2",
            "messages": [{"role": "user", "content": "hi", "session_token": "t"}],
        },
        "provider_api_keys": {"openai": "sk-3"},
        "aws": {"secret_access_key": "s", "clientSecret": "c", "password": "p", "apiKey": "a"},
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    shown = redact(document)
    assert shown["headers"] == {
        "Authorization": REDACTED,
        "X-API-KEY": REDACTED,
        "content-type": "application/json",
    }
    assert shown["body"]["api_key"] == REDACTED and shown["body"]["max_tokens"] == 100
    assert shown["body"]["messages"][0] == {"role": "user", "content": "hi", "session_token": REDACTED}
    assert shown["provider_api_keys"] == REDACTED
    assert set(shown["aws"].values()) == {REDACTED}
    assert shown["usage"] == document["usage"]  # token counts are not tokens
    assert document["headers"]["Authorization"] == "Bearer sk-1"  # the input is left alone


def test_secret_key_names() -> None:
    secret = ["token", "access_token", "x-api-key", "api-key", "Proxy-Authorization", "Cookie", "passwd"]
    harmless = ["max_tokens", "tokens", "keys", "api", "monkey", "key_points", "secretary_name"]
    assert all(is_secret_key(name) for name in secret)
    assert not any(is_secret_key(name) for name in harmless)


def test_side_by_side_diff_pairs_changes_and_keeps_line_numbers() -> None:
    left = pretty_json({"model": "m", "temperature": 0.7, "top_p": 1})
    right = pretty_json({"model": "m", "temperature": 0.2, "top_p": 1, "tools": ["t"]})
    rows = side_by_side(left, right)
    assert [(row.left_number, row.right_number, row.change) for row in rows] == [
        (1, 1, "same"),
        (2, 2, "same"),
        (3, 3, "changed"),
        (None, 4, "added"),
        (None, 5, "added"),
        (None, 6, "added"),
        (4, 7, "same"),
        (5, 8, "same"),
    ]
    assert (rows[2].left, rows[2].right) == ('  "temperature": 0.7,', '  "temperature": 0.2,')
    assert changed_count(rows) == 4
    assert changed_count(side_by_side(left, left)) == 0


def test_removed_lines_have_no_right_side() -> None:
    rows = side_by_side("a\nb\nc", "a\nc")
    assert [(row.left, row.right, row.change) for row in rows] == [
        ("a", "a", "same"),
        ("b", "", "removed"),
        ("c", "c", "same"),
    ]
    assert rows[1].right_number is None


def test_tool_calls_and_content_parts_are_read() -> None:
    view = message_view(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Checking"}],
            "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
        }
    )
    assert view.text == "Checking"
    assert [(call.id, call.name, call.arguments) for call in view.tool_calls] == [
        ("c1", "lookup", '{\n  "q": 1\n}')
    ]
    broken = message_view(
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}
    )
    assert broken.tool_calls[0].arguments == "{oops"


def test_session_tree_nests_children_and_keeps_orphans() -> None:
    logs = [
        {"id": "a", "parent_id": None},
        {"id": "b", "parent_id": "a"},
        {"id": "c", "parent_id": "b"},
        {"id": "d", "parent_id": "gone"},  # parent deleted or in no session
        {"id": "e", "parent_id": "a"},
    ]
    roots = session_tree(logs)
    assert [node.log["id"] for node in roots] == ["a", "d"]
    assert [child.log["id"] for child in roots[0].children] == ["b", "e"]
    assert roots[0].children[0].children[0].log["id"] == "c"


async def test_a_page_that_fails_answers_with_an_error_page(caplog: pytest.LogCaptureFixture) -> None:
    # A bug in a page is a 500 page (its traceback in the log), not Starlette's bare text followed by a
    # dropped connection; a database that cannot answer is the 503 that says why.
    router = APIRouter(route_class=PageRoute)

    @router.get("/ui/broken")
    async def broken() -> Response:
        raise KeyError("model")

    @router.get("/ui/disk-full")
    async def disk_full() -> Response:
        raise sqlite3.OperationalError("database or disk is full")

    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as client:
        with caplog.at_level(logging.ERROR, logger="loopgate"):
            response = await client.get("/ui/broken")
        assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
        assert "Something went wrong on the server" in response.text
        assert "unexpected error on GET /ui/broken" in caplog.text and "KeyError" in caplog.text
        full = await client.get("/ui/disk-full")
        assert full.status_code == 503 and "text/html" in full.headers["content-type"]


def test_numbers_read_as_people_write_them() -> None:
    assert [thousands(value) for value in (0, 999, 3000, 1333332, None)] == [
        "0",
        "999",
        "3,000",
        "1,333,332",
        "",
    ]
    assert [plural(count, "log") for count in (0, 1, 2, 3000, None)] == [
        "0 logs",
        "1 log",
        "2 logs",
        "3,000 logs",
        "0 logs",
    ]
    assert plural(1, "match", "matches") == "1 match" and plural(2, "match", "matches") == "2 matches"
    latencies = (None, 0.0004, 0.84, 1.31, 12.345, 123.45, 12345.678)
    assert [seconds(value) for value in latencies] == [
        "",
        "<1 ms",
        "840 ms",
        "1.31 s",
        "12.3 s",
        "123 s",
        "12,346 s",
    ]
    amounts = (0, 0.00055, 0.1, 0.123456, 1234.50001, 0.000001)
    assert [dollars(value) for value in amounts] == [
        "$0.00",
        "$0.00055",
        "$0.10",
        "$0.12346",
        "$1,234.50",
        "<$0.00001",
    ]
    assert cost({"prompt_cost": 1234.5, "output_cost": 0.00001}) == "$1,234.50"
    assert cost({"prompt_cost": None, "output_cost": None}) == ""
