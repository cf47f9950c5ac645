"""End-to-end scenarios for evaluators and evaluations, driven by the official ``humanloop`` Python SDK
(0.7.35): ``hl.evaluators.*``, and ``hl.evaluations.*`` both with ``hl_generated=False`` and with loopgate
generating the run.

Same contract as ``sdk_scenarios.py`` (whose Context and helpers it reuses): runs with the SDK's own
interpreter, never inside pytest, imports nothing from loopgate, and prints one JSON object
``{scenario: {"ok": true, "result": ...}}`` that ``test_sdk_evaluations.py`` asserts on.

    python sdk_evaluations_scenarios.py --host http://127.0.0.1:PORT/v4 --api-key KEY [--tag TAG] SCENARIO ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from sdk_projects_scenarios import plain
from sdk_scenarios import MOCK, Context, api_error, run

EVALUATOR_FIELDS = ("id", "name", "description", "type", "return_type", "arguments_type", "code")


def attributes(model: Any, names: tuple[str, ...] = EVALUATOR_FIELDS) -> dict[str, Any]:
    """What the SDK's typed answer holds, read attribute by attribute: its EvaluatorResponse,
    EvaluationResponse and EvaluationResultResponse models are never completed (they refer to
    ProjectResponse and LogResponse unresolved), so ``model_dump()`` raises inside the SDK."""
    return {name: getattr(model, name, None) for name in names}


def evaluations(ctx: Context) -> dict[str, Any]:
    hl = ctx.hl
    registered = hl.model_configs.register(project=ctx.name("evaluations"), **MOCK)
    project_id, config_id = registered.project_id, registered.config.id
    exact = hl.evaluators.create(
        name="exact",
        description="output equals the target",
        arguments_type="target_required",
        return_type="boolean",
        type="external",
    )
    renamed = hl.evaluators.update(id=exact.id, description="output equals the target answer")
    stars = hl.evaluators.create(
        name="stars",
        description="a reviewer's score",
        arguments_type="target_free",
        return_type="number",
        type="human",
    )
    code = hl.evaluators.create(
        name="code",
        description="",
        arguments_type="target_free",
        return_type="boolean",
        type="python",
        code="x",
    )
    dataset = hl.datasets.create(project_id=project_id, name="sums", description="")
    datapoints = hl.datasets.create_datapoint(
        dataset_id=dataset.id,
        body=[
            {"inputs": {"q": "1+1"}, "target": {"answer": "2"}},
            {"inputs": {"q": "2+2"}, "target": {"answer": "4"}},
        ],
    )
    created = hl.evaluations.create(
        project_id=project_id,
        config_id=config_id,
        dataset_id=dataset.id,
        evaluator_ids=[exact.id, stars.id],
        hl_generated=False,
        name="nightly",
    )
    answers = {"1+1": "2", "2+2": "5"}
    logs, results = [], []
    for datapoint in datapoints:
        output = answers[datapoint.inputs["q"]]
        logged = hl.evaluations.log(
            evaluation_id=created.id,
            datapoint_id=datapoint.id,
            log={"inputs": datapoint.inputs, "output": output},
        )
        logs.append(plain(logged))
        correct = output == datapoint.target["answer"]
        # (the SDK's own check of ``result`` takes a float but refuses a Python int)
        for evaluator_id, value in ((exact.id, correct), (stars.id, 5.0 if correct else 2.0)):
            # raw: the typed EvaluationResultResponse cannot be dumped (see attributes())
            posted = hl.evaluations.raw.result(
                evaluation_id=created.id, log_id=logged.id, evaluator_id=evaluator_id, result=value
            )
            results.append(posted.body)
    completed = hl.evaluations.update_status(id=created.id, status="completed")
    late = api_error(
        lambda: hl.evaluations.result(
            evaluation_id=created.id, log_id=logs[0]["id"], evaluator_id=exact.id, result=True
        )
    )
    return {
        "project_id": project_id,
        "config_id": config_id,
        "dataset_id": dataset.id,
        "exact": attributes(exact),
        "renamed": attributes(renamed),
        "stars": attributes(stars),
        "code": attributes(code),
        "evaluators": [evaluator.id for evaluator in hl.evaluators.list()],
        "got_evaluator": attributes(hl.evaluators.get(id=stars.id)),
        "datapoint_ids": [datapoint.id for datapoint in datapoints],
        "created": attributes(created, ("id", "status", "dataset_version_id")),
        "created_body": hl.evaluations.raw.get(id=created.id).body,
        "logs": logs,
        "stored_log": plain(hl.logs.get(id=logs[0]["id"])),
        "results": results,
        "completed": attributes(completed, ("id", "status")),
        "late_result": late,
        "read_back": hl.evaluations.raw.get(id=created.id, evaluator_aggregates=True).body,
        # raw for the same reason: each record holds EvaluationResultResponses
        "snapshot": hl.evaluations.raw.list_datapoints(id=created.id).body,
        "for_project": [
            evaluation.id for evaluation in hl.evaluations.list_all_for_project(project_id=project_id)
        ],
        "listed": hl.evaluations.raw.list(project_id=project_id).body,
        "python_evaluator": api_error(
            lambda: hl.evaluations.create(
                project_id=project_id,
                config_id=config_id,
                dataset_id=dataset.id,
                evaluator_ids=[code.id],
                hl_generated=False,
            )
        ),
        "evaluator_in_use": api_error(lambda: hl.evaluators.delete(id=exact.id)),
        "deleted_evaluator": hl.evaluators.delete(id=code.id),
        "evaluator_gone": api_error(lambda: hl.evaluators.get(id=code.id)),
    }


def generated(ctx: Context) -> dict[str, Any]:
    """An evaluation loopgate runs (``hl_generated`` left to its default, true): a generation per datapoint
    with the config and an llm evaluator's judgment of each, read back once the run has completed."""
    hl = ctx.hl
    template = [{"role": "user", "content": "What is {{q}}?"}]
    registered = hl.model_configs.register(project=ctx.name("generated"), chat_template=template, **MOCK)
    project_id = registered.project_id
    judge = hl.evaluators.create(
        name="judge",
        description="the target says whether the answer is right",
        arguments_type="target_required",
        return_type="boolean",
        type="llm",
        model_config={**MOCK, "prompt_template": "Is '{{log.output}}' right? {{testcase.target.right}}"},
    )
    dataset = hl.datasets.create(project_id=project_id, name="sums", description="")
    hl.datasets.create_datapoint(
        dataset_id=dataset.id,
        body=[
            {"inputs": {"q": "1+1"}, "target": {"right": "yes"}},
            {"inputs": {"q": "2+2"}, "target": {"right": "no"}},
        ],
    )
    created = hl.evaluations.create(
        project_id=project_id, config_id=registered.config.id, dataset_id=dataset.id, evaluator_ids=[judge.id]
    )
    statuses = [created.status]
    deadline = time.monotonic() + 30
    while statuses[-1] != "completed" and time.monotonic() < deadline:
        time.sleep(0.2)
        statuses.append(hl.evaluations.get(id=created.id).status)
    # The SDK's typed answer, read as a user would: where the judge's own logs went.
    logging_project = getattr(hl.evaluators.get(id=judge.id), "logging_project", None)
    return {
        "judge": attributes(judge),
        "logging_project": attributes(logging_project, ("id", "name")) if logging_project else None,
        "statuses": sorted(set(statuses), key=statuses.index),
        "read_back": hl.evaluations.raw.get(id=created.id, evaluator_aggregates=True).body,
        "snapshot": hl.evaluations.raw.list_datapoints(id=created.id).body,
        "logs": hl.logs.raw.list(project_id=project_id).body,
    }


SCENARIOS: dict[str, Callable[[Context], Any]] = {"evaluations": evaluations, "generated": generated}


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
