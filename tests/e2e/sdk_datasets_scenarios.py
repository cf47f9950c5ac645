"""End-to-end scenarios for datasets and datapoints, driven by the official ``humanloop`` Python SDK
(0.7.35): ``hl.datasets.*`` and ``hl.datapoints.get``.

Same contract as ``sdk_scenarios.py`` (whose Context and helpers it reuses): runs with the SDK's own
interpreter, never inside pytest, imports nothing from loopgate, and prints one JSON object
``{scenario: {"ok": true, "result": ...}}`` that ``test_sdk_datasets.py`` asserts on.

    python sdk_datasets_scenarios.py --host http://127.0.0.1:PORT/v4 --api-key KEY [--tag TAG] SCENARIO ...
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from sdk_projects_scenarios import plain
from sdk_scenarios import MOCK, Context, api_error, run, user


def datasets(ctx: Context) -> dict[str, Any]:
    hl = ctx.hl
    project = hl.projects.create(name=ctx.name("datasets"))
    created = hl.datasets.create(project_id=project.id, name="golden", description="answers we trust")
    one = hl.datasets.create_datapoint(
        dataset_id=created.id,
        inputs={"city": "Paris"},
        messages=[{"role": "user", "content": "Capital of France?"}],
        target={"answer": "Paris", "exact": True},
    )
    many = hl.datasets.create_datapoint(
        dataset_id=created.id, body=[{"inputs": {"city": "Rome"}}, {"target": {"answer": "Madrid"}}]
    )
    chat = hl.chat(
        project=project.name,
        model_config={**MOCK, "chat_template": [{"role": "system", "content": "You know {{city}}."}]},
        inputs={"city": "Oslo"},
        messages=user("Where is it?"),
    )
    from_logs = hl.datasets.create_datapoint(dataset_id=created.id, log_ids=[chat.data[0].id])
    first_page = hl.datasets.list_datapoints(dataset_id=created.id, size=3)
    second_page = hl.datasets.list_datapoints(dataset_id=created.id, page=1, size=3)
    updated = hl.datasets.update(id=created.id, name="golden-v2")
    got = hl.datasets.get(id=created.id)
    datapoint = hl.datapoints.get(id=one[0].id)
    listed = hl.datasets.list_all_for_project(project_id=project.id)
    everywhere = [dataset.id for dataset in hl.datasets.list()]
    unknown_log = api_error(
        lambda: hl.datasets.create_datapoint(dataset_id=created.id, log_ids=["data_doesnotexist0000000"])
    )
    deleted = hl.datasets.delete(id=created.id)
    return {
        "project_id": project.id,
        "created": plain(created),
        "one": plain(one),
        "many": plain(many),
        "log_id": chat.data[0].id,
        "from_logs": plain(from_logs),
        "first_page": plain(first_page),
        "second_page": plain(second_page),
        "updated": plain(updated),
        "got": plain(got),
        "datapoint": plain(datapoint),
        "datapoint_attributes": {"inputs": datapoint.inputs, "target": datapoint.target},
        "listed": plain(listed),
        "in_org_list": created.id in everywhere,
        "deleted": deleted,
        "gone": api_error(lambda: hl.datasets.get(id=created.id)),
        "datapoint_gone": api_error(lambda: hl.datapoints.get(id=one[0].id)),
        "unknown_log": unknown_log,
        # (a name over 255 characters never leaves the SDK: it checks the length itself)
        "unknown_project": api_error(
            lambda: hl.datasets.create(project_id="pr_doesnotexist000000000", name="n", description="d")
        ),
    }


SCENARIOS: dict[str, Callable[[Context], Any]] = {"datasets": datasets}


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
