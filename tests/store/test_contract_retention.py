"""Retention (``loopgate prune``): old logs go in batches with their feedback and the blobs only they used;
newer logs, other projects' logs and shared content stay."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select

from loopgate import ids
from loopgate.store import tables
from loopgate.store.feedback import FeedbackChange, FeedbackStore
from loopgate.store.logs import LogStore
from loopgate.store.repository import Store
from loopgate.store.retention import parse_age, prune
from tests.store.conftest import log_row, stamp, write

SHARED = "a system prompt that old and new logs both use, long enough to be a blob " * 2
OLD_ONLY = "content that only the old logs used, so it goes with them when they are pruned " * 2


async def _blob_texts(store: Store) -> set[str]:
    async with store.engine.connect() as connection:
        return {str(text) for text in (await connection.execute(select(tables.blobs.c.data))).scalars()}


async def test_prune_deletes_old_logs_their_feedback_and_unused_blobs(store: Store, org: str) -> None:
    project_id = await store.project_by_name(org, "aging")
    blobs: dict[str, str] = {}
    old = [
        log_row(
            org,
            blobs,
            project_id=project_id,
            created_at=stamp(-60 * 24 * 40 + minute),
            inputs={"a": OLD_ONLY},
        )
        for minute in range(7)
    ]
    old_parent = old[0]
    new = log_row(
        org,
        blobs,
        project_id=project_id,
        created_at=stamp(),
        parent_id=old_parent["id"],
        inputs={"s": SHARED},
    )
    old.append(
        log_row(org, blobs, project_id=project_id, created_at=stamp(-60 * 24 * 40), inputs={"s": SHARED})
    )
    await write(store, *old, new, blobs=blobs)
    feedback_row = {"id": ids.new_id("fbk"), "org_id": org, "log_id": old[1]["id"], "type": "rating",
                    "value": orjson.dumps("good").decode(), "user": None, "created_at": stamp()}  # fmt: skip
    await FeedbackStore(store.engine).apply([FeedbackChange(old[1]["id"], "rating", feedback_row)])

    result = await prune(store.engine, before=stamp(-60 * 24 * 30), batch_size=3)  # several batches
    assert (result.logs, result.feedback, result.blobs) == (8, 1, 1)
    (kept,) = await LogStore(store.engine).fetch(org, [new["id"], *(row["id"] for row in old)])
    assert kept["id"] == new["id"] and kept["parent_id"] is None
    assert kept["payload"]["inputs"] == {"s": SHARED}
    assert await _blob_texts(store) == {SHARED}
    again = await prune(store.engine, before=stamp(-60 * 24 * 30))
    assert (again.logs, again.feedback, again.blobs) == (0, 0, 0)


async def test_prune_of_one_project_leaves_the_others(store: Store, org: str) -> None:
    target = await store.project_by_name(org, "target")
    bystander = await store.project_by_name(org, "bystander")
    doomed = log_row(org, project_id=target, created_at=stamp(-100))
    spared = log_row(org, project_id=bystander, created_at=stamp(-100))
    await write(store, doomed, spared)
    result = await prune(store.engine, before=stamp(), project_id=target)
    assert result.logs == 1
    assert (
        await store.get_log(org, doomed["id"]) is None and await store.get_log(org, spared["id"]) is not None
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        (" 90m ", timedelta(minutes=90)),
    ],
)
def test_ages_parse(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["30", "d", "-3d", "1y", "3.5d"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="30d"):
        parse_age(text)
