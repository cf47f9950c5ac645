"""Datasets and datapoints driven by the official humanloop SDK 0.7.35, end to end (``hl.datasets.*``,
``hl.datapoints.get``).

The scenarios in ``sdk_datasets_scenarios.py`` run as one subprocess with the SDK's interpreter against the
session's ``loopgate serve`` and record what the SDK handed back; these tests assert on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.sdk import result, run_scenarios
from tests.helpers import MOCK_REPLY

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite", "postgresql")]

SCRIPT = Path(__file__).with_name("sdk_datasets_scenarios.py")
DATASET_ID = re.compile(r"^evts_[A-Za-z0-9]{21}$")
DATAPOINT_ID = re.compile(r"^dp_[A-Za-z0-9]{21}$")


@pytest.fixture(scope="module")
def sdk(server: Server) -> dict[str, Any]:
    return run_scenarios(SCRIPT, server, "all")


def test_datasets_and_datapoints_through_the_sdk(sdk: dict[str, Any]) -> None:
    got = result(sdk, "datasets")
    created = got["created"]
    assert DATASET_ID.match(created["id"]) and created["project_id"] == got["project_id"]
    assert (created["name"], created["description"], created["datapoint_count"]) == (
        "golden",
        "answers we trust",
        0,
    )

    (one,) = got["one"]
    assert DATAPOINT_ID.match(one["id"]) and one["dataset_id"] == created["id"]
    assert one["inputs"] == {"city": "Paris"} and one["target"] == {"answer": "Paris", "exact": True}
    assert [(m["role"], m["content"]) for m in one["messages"]] == [("user", "Capital of France?")]
    assert [d["inputs"] for d in got["many"]] == [{"city": "Rome"}, {}]
    assert got["many"][1]["target"] == {"answer": "Madrid"}

    (copied,) = got["from_logs"]
    assert copied["inputs"] == {"city": "Oslo"}
    assert [(m["role"], m["content"]) for m in copied["messages"]] == [
        ("system", "You know Oslo."),
        ("user", "Where is it?"),
    ]
    assert copied["target"] == {"output": MOCK_REPLY + "Where is it?"}

    # four datapoints in the order they were added, three per page, pages from 0
    first, second = got["first_page"], got["second_page"]
    assert (first["page"], first["size"], first["total"]) == (0, 3, 4)
    assert (second["page"], second["total"]) == (1, 4)
    order = [d["id"] for d in first["records"] + second["records"]]
    assert order == [one["id"], *(d["id"] for d in got["many"]), copied["id"]]

    updated = got["updated"]
    assert updated["name"] == "golden-v2" and updated["description"] == "answers we trust"
    assert updated["datapoint_count"] == 4 and updated["updated_at"] > created["updated_at"]
    assert got["got"] == updated
    assert got["datapoint"] == one and got["datapoint_attributes"]["inputs"] == {"city": "Paris"}
    assert got["listed"] == [updated] and got["in_org_list"] is True

    assert got["unknown_log"]["status"] == 404 and "data_doesnotexist" in got["unknown_log"]["body"]["detail"]
    assert got["deleted"]["id"] == created["id"]
    assert got["gone"]["status"] == 404 and got["datapoint_gone"]["status"] == 404
    assert got["unknown_project"]["status"] == 404
