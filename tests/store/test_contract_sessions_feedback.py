"""Sessions (lists, trees, summaries) and feedback (its rows and the project types it is checked against)."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from loopgate import ids
from loopgate.store import tables
from loopgate.store.feedback import FeedbackChange, FeedbackStore
from loopgate.store.projects import ProjectStore
from loopgate.store.repository import Store
from loopgate.store.sessions import SessionStore
from tests.store.conftest import log_row, stamp, write


async def test_sessions_of_a_project_and_their_summaries(store: Store, org: str) -> None:
    sessions = SessionStore(store.engine)
    project_id = await store.project_by_name(org, "chats")
    other_project = await store.project_by_name(org, "elsewhere")
    empty = await sessions.create(org)
    older = await store.session_by_reference(org, "older")
    newer = await store.session_by_reference(org, "newer")
    first = log_row(org, project_id=project_id, session_id=older, created_at=stamp(1), output="hi")
    last = log_row(org, project_id=other_project, session_id=older, created_at=stamp(2), output="bye")
    only = log_row(org, project_id=project_id, session_id=newer, created_at=stamp(3), output="solo")
    await write(store, last, first, only)

    got = await sessions.get(org, empty)
    assert got is not None and got["reference_id"] is None
    assert await sessions.get("tm_other", empty) is None
    rows, total = await sessions.page_for_project(org, project_id, page=1, size=1)
    assert total == 2 and [row["id"] for row in rows] == [newer]
    rows, _ = await sessions.page_for_project(org, project_id, page=2, size=1)
    assert [row["id"] for row in rows] == [older]
    assert await sessions.log_ids(org, older) == [first["id"], last["id"]]

    summaries = await sessions.summaries(org, [older, newer, empty])
    assert summaries[older].datapoints_count == 2
    assert summaries[older].first_log_id == first["id"] and summaries[older].last_output == "bye"
    assert summaries[older].projects == [(project_id, "chats"), (other_project, "elsewhere")]
    assert summaries[older].last_activity is not None
    assert summaries[empty].datapoints_count == 0 and summaries[empty].first_log_id is None


async def test_feedback_rows_apply_in_order_and_project_types(store: Store, org: str) -> None:
    feedback = FeedbackStore(store.engine)
    project_id = await store.project_by_name(org, "rated")
    bare_project = await store.project_by_name(org, "bare")
    log = log_row(org, project_id=project_id)
    orphan = log_row(org)
    await write(store, log, orphan)
    assert await feedback.log_projects(org, [log["id"], orphan["id"], "data_none"]) == {
        log["id"]: project_id,
        orphan["id"]: None,
    }
    assert await feedback.log_projects("tm_other", [log["id"]]) == {}

    def row(kind: str, value: object) -> dict[str, object]:
        encoded = orjson.dumps(value).decode()
        return {"id": ids.new_id("fbk"), "org_id": org, "log_id": log["id"], "type": kind, "value": encoded,
                "user": "u", "created_at": stamp()}  # fmt: skip

    await feedback.apply(
        [
            FeedbackChange(log["id"], "rating", row("rating", "good")),
            FeedbackChange(log["id"], "comment", row("comment", "nice")),
            FeedbackChange(log["id"], "rating", None),  # set, then unset in one batch: ends unset
        ]
    )
    async with store.engine.connect() as connection:
        kinds = (await connection.execute(select(tables.feedback.c.type))).scalars().all()
    assert kinds == ["comment"]

    types = [{"type": "tone", "class": "select", "values": [{"value": "warm"}]}]
    await ProjectStore(store.engine).update(org, project_id, feedback_types=types)
    assert await feedback.feedback_types(org, [project_id, bare_project]) == {
        project_id: types,
        bare_project: [],
    }
    assert await feedback.feedback_types(org, []) == {}
