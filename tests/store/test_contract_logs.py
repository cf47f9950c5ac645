"""Log queries (``LogStore``): reading logs whole, the filtered and sorted list, reference ids, updates,
deletes and tool configs -- the same answers on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from loopgate import ids
from loopgate.store.feedback import FeedbackChange, FeedbackStore
from loopgate.store.logs import LogFilter, LogSort, LogStore, utc
from loopgate.store.repository import Store
from tests.store.conftest import log_row, stamp, write


@pytest.fixture
def logs(store: Store) -> LogStore:
    return LogStore(store.engine)


async def _config(store: Store, org: str, project_id: str, model: str) -> str:
    body = {"provider": "mock", "model": model}
    return await store.model_config_id(org, project_id, model.ljust(64, "0"), body)


async def _feedback(store: Store, org: str, log_id: str, kind: str, value: object, minutes: float) -> None:
    row = {
        "id": ids.new_id("fbk"),
        "org_id": org,
        "log_id": log_id,
        "type": kind,
        "value": orjson.dumps(value).decode(),
        "user": None,
        "created_at": stamp(minutes),
    }
    await FeedbackStore(store.engine).apply([FeedbackChange(log_id, kind, row)])


async def _ids(
    logs: LogStore, org: str, where: LogFilter, *sorts: LogSort, page: int = 0, size: int = 50
) -> list[str]:
    rows, _total = await logs.page(org, where, list(sorts), page=page, size=size)
    return [row["id"] for row in rows]


async def test_fetch_reads_logs_whole_in_the_order_asked(store: Store, logs: LogStore, org: str) -> None:
    project_id = await store.project_by_name(org, "whole")
    session_id = await store.session_by_reference(org, "s-ref")
    config_id = await _config(store, org, project_id, "mock-1")
    long_input = "a long input value that is stored once as a content blob " * 3
    blobs: dict[str, str] = {}
    parent = log_row(org, project_id=project_id, session_id=session_id, reference_id="parent-ref")
    child = log_row(
        org,
        blobs,
        project_id=project_id,
        session_id=session_id,
        parent_id=parent["id"],
        config_id=config_id,
        inputs={"q": long_input},
        metadata={"k": "v"},
    )
    await write(store, parent, child, blobs=blobs)
    await _feedback(store, org, child["id"], "rating", "good", 1)
    found = await logs.fetch(org, [child["id"], "data_unknown", parent["id"]])
    assert [row["id"] for row in found] == [child["id"], parent["id"]]
    first = found[0]
    assert first["project_name"] == "whole" and first["session_reference_id"] == "s-ref"
    assert first["parent_reference_id"] == "parent-ref"
    assert first["payload"]["inputs"] == {"q": long_input} and first["metadata"] == {"k": "v"}
    assert first["config"]["id"] == config_id
    assert [(item["type"], orjson.loads(item["value"])) for item in first["feedback"]] == [("rating", "good")]
    assert isinstance(first["created_at"], datetime) and utc(first["created_at"]).tzinfo == UTC
    assert await logs.fetch("tm_other", [child["id"]]) == []


async def test_the_list_pages_newest_first_with_a_total(store: Store, logs: LogStore, org: str) -> None:
    project_id = await store.project_by_name(org, "paged")
    rows = [log_row(org, project_id=project_id, created_at=stamp(minute)) for minute in range(7)]
    # Two logs in the same instant are ordered by id, so pages never overlap.
    rows.append(log_row(org, project_id=project_id, created_at=stamp(3)))
    await write(store, *rows)
    newest_first = sorted(rows, key=lambda row: (row["created_at"], row["id"]), reverse=True)
    page0, total = await logs.page(org, LogFilter(project_id), [], page=0, size=3)
    page2, _ = await logs.page(org, LogFilter(project_id), [], page=2, size=3)
    assert total == 8
    assert [row["id"] for row in page0] == [row["id"] for row in newest_first[:3]]
    assert [row["id"] for row in page2] == [row["id"] for row in newest_first[6:]]
    oldest = await _ids(logs, org, LogFilter(project_id), LogSort("timestamp", descending=False), size=1)
    assert oldest == [newest_first[-1]["id"]]


async def test_date_source_model_and_metadata_filters(store: Store, logs: LogStore, org: str) -> None:
    project_id = await store.project_by_name(org, "filters")
    one, two = (
        await _config(store, org, project_id, "model-a"),
        await _config(store, org, project_id, "model-b"),
    )
    early = log_row(org, project_id=project_id, created_at=stamp(0), source="sdk", config_id=one)
    middle = log_row(
        org,
        project_id=project_id,
        created_at=stamp(10),
        source="ui",
        config_id=two,
        metadata={"Tier": "Gold"},
    )
    late = log_row(org, project_id=project_id, created_at=stamp(20), source="sdk", config_id=two)
    await write(store, early, middle, late)
    assert await _ids(logs, org, LogFilter(project_id, start=stamp(10), end=stamp(20))) == [middle["id"]]
    assert await _ids(logs, org, LogFilter(project_id, start=stamp(10))) == [late["id"], middle["id"]]
    assert await _ids(logs, org, LogFilter(project_id, sources=["ui"])) == [middle["id"]]
    assert await _ids(logs, org, LogFilter(project_id, models=["model-a"])) == [early["id"]]
    assert await _ids(logs, org, LogFilter(project_id, metadata_search="gold")) == [middle["id"]]
    assert await _ids(logs, org, LogFilter(project_id, version_status="uncommitted")) == []
    by_model = await _ids(logs, org, LogFilter(project_id), LogSort("model", descending=False))
    assert by_model[0] == early["id"]
    by_source = await _ids(logs, org, LogFilter(project_id), LogSort("source", descending=True))
    assert by_source[0] == middle["id"]


async def test_search_is_case_insensitive_over_output_and_inputs(
    store: Store, logs: LogStore, org: str
) -> None:
    project_id = await store.project_by_name(org, "search")
    long_input = "Needle hidden in a long input that lives in a content blob, not in the row " * 2
    blobs: dict[str, str] = {}
    by_output = log_row(org, project_id=project_id, output="The Quick Brown Fox")
    by_short_input = log_row(org, project_id=project_id, inputs={"topic": "Foxes and 100% wolves"})
    by_blob = log_row(org, blobs, project_id=project_id, inputs={"context": long_input})
    neither = log_row(org, project_id=project_id, output="nothing here", inputs={"topic": "cats"})
    await write(store, by_output, by_short_input, by_blob, neither, blobs=blobs)
    assert set(await _ids(logs, org, LogFilter(project_id, search="fox"))) == {
        by_output["id"],
        by_short_input["id"],
    }
    assert await _ids(logs, org, LogFilter(project_id, search="QUICK brown")) == [by_output["id"]]
    assert await _ids(logs, org, LogFilter(project_id, search="100%")) == [by_short_input["id"]]
    assert await _ids(logs, org, LogFilter(project_id, search="needle HIDDEN")) == [by_blob["id"]]
    assert await _ids(logs, org, LogFilter(project_id, search="_")) == []  # wildcards are literal


async def test_latest_feedback_filters_and_sorts(store: Store, logs: LogStore, org: str) -> None:
    project_id = await store.project_by_name(org, "feedback")
    good, bad, none = (log_row(org, project_id=project_id) for _ in range(3))
    await write(store, good, bad, none)
    await _feedback(store, org, good["id"], "rating", "bad", 1)
    await _feedback(store, org, good["id"], "rating", "good", 2)  # the latest one counts
    await _feedback(store, org, bad["id"], "rating", "bad", 1)
    assert await _ids(logs, org, LogFilter(project_id, feedback={"rating": ["good"]})) == [good["id"]]
    ascending = await _ids(logs, org, LogFilter(project_id), LogSort("feedback-rating", descending=False))
    descending = await _ids(logs, org, LogFilter(project_id), LogSort("feedback-rating", descending=True))
    assert ascending == [bad["id"], good["id"], none["id"]]  # no feedback sorts last either way
    assert descending == [good["id"], bad["id"], none["id"]]


async def test_number_and_list_feedback_filter_and_sort_by_value(
    store: Store, logs: LogStore, org: str
) -> None:
    project_id = await store.project_by_name(org, "feedback-values")
    rows = [log_row(org, project_id=project_id) for _ in range(6)]
    await write(store, *rows)
    for row, stars in zip(rows, [9, 10, 2.5, 100, 0], strict=False):
        await _feedback(store, org, row["id"], "stars", stars, 1)
    await _feedback(store, org, rows[0]["id"], "action", ["copied", "saved"], 1)
    await _feedback(store, org, rows[1]["id"], "action", ["saved"], 1)

    by_value = [rows[4]["id"], rows[2]["id"], rows[0]["id"], rows[1]["id"], rows[3]["id"]]
    ascending = await _ids(logs, org, LogFilter(project_id), LogSort("feedback-stars", descending=False))
    descending = await _ids(logs, org, LogFilter(project_id), LogSort("feedback-stars", descending=True))
    assert ascending == [*by_value, rows[5]["id"]]  # 0, 2.5, 9, 10, 100, then the log without any
    assert descending == [*reversed(by_value), rows[5]["id"]]

    def stars(*values: str) -> LogFilter:
        return LogFilter(project_id, feedback={"stars": list(values)})

    assert await _ids(logs, org, stars("10.0")) == [rows[1]["id"]]
    assert await _ids(logs, org, stars("2.5", "1e2")) == [rows[3]["id"], rows[2]["id"]]
    assert await _ids(logs, org, stars("0")) == [rows[4]["id"]]
    assert await _ids(logs, org, stars("true")) == []
    actions = {
        value: LogFilter(project_id, feedback={"action": [value]}) for value in ("copied", "saved", "cop")
    }
    assert await _ids(logs, org, actions["copied"]) == [rows[0]["id"]]
    assert await _ids(logs, org, actions["saved"]) == [rows[1]["id"], rows[0]["id"]]
    assert await _ids(logs, org, actions["cop"]) == []


async def test_oldest_first_keeps_the_order_of_one_instant(store: Store, logs: LogStore, org: str) -> None:
    """The samples of one call share their time: oldest first lists them in the order they were made."""
    project_id = await store.project_by_name(org, "one-instant")
    samples = [log_row(org, project_id=project_id, created_at=stamp(1)) for _ in range(3)]
    await write(store, *samples)
    made = sorted(row["id"] for row in samples)  # ids sort by the time they were made
    assert await _ids(logs, org, LogFilter(project_id), LogSort("timestamp", descending=False)) == made
    assert await _ids(logs, org, LogFilter(project_id), LogSort("timestamp", descending=True)) == made[::-1]
    assert await _ids(logs, org, LogFilter(project_id)) == made[::-1]


async def test_references_update_and_delete(store: Store, logs: LogStore, org: str) -> None:
    project_id = await store.project_by_name(org, "changes")
    parent = log_row(org, project_id=project_id, reference_id="r-parent")
    child = log_row(org, project_id=project_id, parent_id=parent["id"], reference_id="r-child")
    await write(store, parent, child)
    await _feedback(store, org, parent["id"], "rating", "good", 1)
    assert await logs.taken_references(org, ["r-parent", "r-free", "r-child"]) == {"r-parent", "r-child"}
    assert await logs.log_id_by_reference(org, "r-child") == child["id"]
    assert await logs.log_id_by_reference("tm_other", "r-child") is None
    assert await logs.update(org, child["id"], {"output": "edited", "updated_at": stamp(60)})
    assert not await logs.update("tm_other", child["id"], {"output": "no"})
    assert (await logs.fetch(org, [child["id"]]))[0]["output"] == "edited"
    assert await logs.delete(org, [parent["id"], "data_missing"]) == ["data_missing"]
    assert await logs.delete(org, [parent["id"]]) == []
    (remaining,) = await logs.fetch(org, [child["id"]])
    assert remaining["parent_id"] is None  # the child became a root
    assert await logs.fetch(org, [parent["id"]]) == []


async def test_tool_configs_are_created_once(store: Store, logs: LogStore, org: str) -> None:
    project_id = await store.project_by_name(org, "tools")
    body = {"name": "weather", "type": "tool"}
    first = await logs.typed_config_id(org, project_id, "t" * 64, body, config_type="tool")
    assert await logs.typed_config_id(org, project_id, "t" * 64, body, config_type="tool") == first
    row = await logs.config_row(org, first)
    assert row is not None and row["config_type"] == "tool" and row["name"] == "weather"
    assert await logs.config_row("tm_other", first) is None
