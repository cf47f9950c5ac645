"""POST /v4/feedback over HTTP: defaults and custom types, labels, unset, batches, the feedback filter of
GET /logs, and organizations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Server
from tests.helpers import db_rows, log_body, unique

pytestmark = pytest.mark.backends("sqlite", "postgresql")


@pytest.fixture(scope="module")
def other(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.create_key(org=unique("org"))) as http:
        yield http


def new_log(client: httpx.Client, project: str | None = None, **extra: Any) -> dict[str, Any]:
    response = client.post("/logs", json=log_body(project or unique(), **extra))
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def feedback_of(client: httpx.Client, log_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/logs/{log_id}").json()["feedback"]
    return found


def give(client: httpx.Client, body: Any) -> Any:
    response = client.post("/feedback", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def define_types(server: Server, project_id: str, types: list[dict[str, Any]]) -> None:
    """A project's custom feedback types, as ``POST /projects/{id}/feedback-types`` stores them."""
    db_rows(
        server.database,
        "UPDATE projects SET feedback_types = ? WHERE id = ?",
        orjson.dumps(types).decode(),
        project_id,
    )


def test_one_item_answers_one_response_and_shows_on_the_log(client: httpx.Client) -> None:
    log = new_log(client)
    recorded = give(
        client,
        {
            "type": "rating",
            "value": "good",
            "data_id": log["id"],
            "user": "ann@example.com",
            "created_at": "2024-02-03T04:05:06Z",
        },
    )
    assert set(recorded) == {"id", "type", "value", "data_id", "user", "created_at"}
    assert recorded["id"].startswith("ann_") and len(recorded["id"]) == 25
    assert (recorded["type"], recorded["value"], recorded["data_id"]) == ("rating", "good", log["id"])
    assert recorded["user"] == "ann@example.com" and recorded["created_at"].startswith("2024-02-03T04:05:06")
    (shown,) = feedback_of(client, log["id"])
    assert shown == recorded


def test_a_list_answers_a_list_and_every_value_shape_round_trips(client: httpx.Client) -> None:
    log = new_log(client)
    items = [
        {"type": "rating", "value": "bad", "data_id": log["id"]},
        {"type": "action", "value": ["copied", "saved"], "data_id": log["id"]},
        {"type": "issue", "value": "anything goes", "data_id": log["id"]},
        {"type": "correction", "value": "The answer is 5.", "data_id": log["id"]},
        {"type": "comment", "value": "nice", "data_id": log["id"]},
    ]
    recorded = give(client, items)
    assert isinstance(recorded, list) and [r["value"] for r in recorded] == [i["value"] for i in items]
    assert len({r["id"] for r in recorded}) == 5
    assert [f["value"] for f in feedback_of(client, log["id"])] == [i["value"] for i in items]
    assert give(client, []) == []


def test_custom_types_check_labels_classes_and_numbers(client: httpx.Client, server: Server) -> None:
    log = new_log(client)
    project_id = log["project_id"]
    define_types(
        server,
        project_id,
        [
            {
                "type": "tone",
                "class": "select",
                "values": [
                    {"value": "warm", "sentiment": "positive"},
                    {"value": "cold", "sentiment": "negative"},
                ],
            },
            {
                "type": "tags",
                "class": "multi_select",
                "values": [{"value": "a", "sentiment": "neutral"}, {"value": "b", "sentiment": "neutral"}],
            },
            {"type": "score", "class": "number", "values": None},
            {"type": "note", "class": "text", "values": None},
            {"type": "rating", "class": "select", "values": [{"value": "5", "sentiment": "positive"}]},
        ],
    )
    accepted = [
        ("tone", "warm"),
        ("tags", ["a", "b"]),
        ("tags", "a"),
        ("score", 4.5),
        ("note", "free"),
        ("rating", "5"),
    ]
    for feedback_type, value in accepted:
        give(client, {"type": feedback_type, "value": value, "data_id": log["id"]})
    rejected = [
        ("tone", "lukewarm", "value"),
        ("tone", ["warm"], "value"),
        ("tags", ["a", "z"], "value"),
        ("score", "high", "value"),
        ("score", True, "value"),
        ("note", 3, "value"),
        ("rating", "good", "value"),  # the project's own labels replace the default good / bad
        ("mood", "happy", "type"),  # not a type of this project
    ]
    for feedback_type, value, field in rejected:
        response = client.post(
            "/feedback", json={"type": feedback_type, "value": value, "data_id": log["id"]}
        )
        assert response.status_code == 422, (feedback_type, value, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", field]
    assert len(feedback_of(client, log["id"])) == len(accepted)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"type": "rating", "value": "meh"}, ["body", "value"]),
        ({"type": "correction", "value": ["a"]}, ["body", "value"]),
        ({"type": "rating"}, ["body", "value"]),
        ({"value": "good"}, ["body", "type"]),
        ({"type": "rating", "value": {"nested": 1}}, None),
    ],
)
def test_invalid_feedback_is_422(client: httpx.Client, body: dict[str, Any], loc: list[Any] | None) -> None:
    log = new_log(client)
    response = client.post("/feedback", json={**body, "data_id": log["id"]})
    assert response.status_code == 422, response.text
    if loc is not None:
        assert response.json()["detail"][0]["loc"] == loc
    missing_log = client.post("/feedback", json={"type": "rating", "value": "good"})
    assert missing_log.json()["detail"][0]["loc"] == ["body", "data_id"]


def test_unset_clears_that_type_only(client: httpx.Client) -> None:
    log = new_log(client)
    give(
        client,
        [
            {"type": "rating", "value": "good", "data_id": log["id"]},
            {"type": "rating", "value": "bad", "data_id": log["id"]},
            {"type": "comment", "value": "keep me", "data_id": log["id"]},
        ],
    )
    cleared = give(client, {"type": "rating", "unset": True, "data_id": log["id"]})
    assert cleared["value"] == [] and cleared["id"].startswith("ann_") and cleared["type"] == "rating"
    assert [(f["type"], f["value"]) for f in feedback_of(client, log["id"])] == [("comment", "keep me")]
    # set-then-unset in one batch ends unset
    give(
        client,
        [
            {"type": "rating", "value": "good", "data_id": log["id"]},
            {"type": "rating", "unset": True, "data_id": log["id"]},
        ],
    )
    assert [f["type"] for f in feedback_of(client, log["id"])] == ["comment"]


def test_a_batch_with_one_bad_item_records_nothing(client: httpx.Client, server: Server) -> None:
    log = new_log(client)
    response = client.post(
        "/feedback",
        json=[
            {"type": "rating", "value": "good", "data_id": log["id"]},
            {"type": "rating", "value": "meh", "data_id": log["id"]},
        ],
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 1, "value"]
    unknown = client.post(
        "/feedback",
        json=[
            {"type": "rating", "value": "good", "data_id": log["id"]},
            {"type": "rating", "value": "good", "data_id": "data_doesnotexist000000000"},
        ],
    )
    assert unknown.status_code == 404 and "data_doesnotexist000000000" in unknown.json()["detail"]
    assert feedback_of(client, log["id"]) == []
    assert db_rows(server.database, "SELECT id FROM feedback WHERE log_id = ?", log["id"]) == []


def test_feedback_on_save_false_logs_and_inline_with_the_log(client: httpx.Client) -> None:
    unsaved = new_log(client, save=False, feedback=[{"type": "comment", "value": "inline"}])
    give(client, {"type": "rating", "value": "good", "data_id": unsaved["id"]})
    assert [f["value"] for f in feedback_of(client, unsaved["id"])] == ["inline", "good"]
    bad_inline = client.post("/logs", json=log_body(unique(), feedback=[{"type": "rating", "value": "meh"}]))
    assert bad_inline.status_code == 422
    assert bad_inline.json()["detail"][0]["loc"] == ["body", "feedback", 0, "value"]


def test_the_latest_feedback_filters_and_sorts_the_log_list(client: httpx.Client) -> None:
    project = unique()
    good, bad, changed, none = (new_log(client, project) for _ in range(4))
    give(
        client,
        [
            {"type": "rating", "value": "good", "data_id": good["id"]},
            {"type": "rating", "value": "bad", "data_id": bad["id"]},
            {
                "type": "rating",
                "value": "good",
                "data_id": changed["id"],
                "created_at": "2024-01-01T00:00:00Z",
            },
            {
                "type": "rating",
                "value": "bad",
                "data_id": changed["id"],
                "created_at": "2024-01-02T00:00:00Z",
            },
        ],
    )

    def found(**params: Any) -> list[str]:
        response = client.get("/logs", params={"project_id": good["project_id"], **params})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["records"]]

    assert found(**{"feedback-rating_filter": "good"}) == [good["id"]]
    assert set(found(**{"feedback-rating_filter": ["good", "bad"]})) == {good["id"], bad["id"], changed["id"]}
    ordered = found(sort="feedback-rating.asc")
    assert set(ordered[:2]) == {bad["id"], changed["id"]} and ordered[2:] == [good["id"], none["id"]]


def test_another_organization_cannot_give_feedback(client: httpx.Client, other: httpx.Client) -> None:
    log = new_log(client)
    response = other.post("/feedback", json={"type": "rating", "value": "good", "data_id": log["id"]})
    assert response.status_code == 404
    assert feedback_of(client, log["id"]) == []
