"""Evaluations (``EvaluationStore``) on SQLite and PostgreSQL: the dataset version pinned at creation bounds
the snapshot, one log per datapoint, one result per log and evaluator (a repeat replaces it), aggregates
as the mean of numeric results, and the rows an evaluation uses cannot be deleted under it while deleting
its project removes it."""

from __future__ import annotations

import pytest

from loopgate.store.catalog import Catalog
from loopgate.store.datasets import NewDatapoint
from loopgate.store.evaluations import EvaluationRow
from loopgate.store.evaluators import InUse, NewEvaluator
from loopgate.store.repository import Store


async def _run(store: Store, catalog: Catalog, org: str) -> tuple[EvaluationRow, list[str], str]:
    project_id = await store.project_by_name(org, "evaluations")
    config_id = await store.model_config_id(org, project_id, "hash", {"model": "m", "provider": "mock"})
    dataset = await catalog.datasets.create(org, project_id, "golden", "")
    assert dataset is not None
    added = await catalog.datasets.add(org, dataset.id, [NewDatapoint(inputs={"q": "1"}), NewDatapoint()])
    assert added is not None
    evaluator = await catalog.evaluators.create(
        org,
        NewEvaluator(
            name="e", description="", type="external", arguments_type="target_free", return_type="number"
        ),
    )
    created = await catalog.evaluations.create(
        org,
        project_id=project_id,
        config_id=config_id,
        dataset_id=dataset.id,
        evaluator_ids=[evaluator.id],
        name=None,
    )
    assert created is not None
    return created, [row.id for row in added], evaluator.id


async def test_the_snapshot_is_the_dataset_as_of_creation(store: Store, catalog: Catalog, org: str) -> None:
    run, datapoints, evaluator_id = await _run(store, catalog, org)
    assert run.id.startswith("ev_") and run.status == "running" and run.dataset_version == 1
    assert run.evaluator_ids == (evaluator_id,)
    assert await catalog.evaluations.get(org, run.id) == run
    assert await catalog.evaluations.get("tm_other", run.id) is None
    late = await catalog.datasets.add(org, run.dataset_id, [NewDatapoint(inputs={"q": "late"})])
    assert late is not None
    assert await catalog.evaluations.snapshot_count(run) == 2
    page = await catalog.evaluations.snapshot_page(run, offset=1, size=5)
    assert [row.id for row in page] == datapoints[1:]
    assert await catalog.evaluations.in_snapshot(run, datapoints[0])
    assert not await catalog.evaluations.in_snapshot(run, late[0].id)


async def test_logs_results_and_aggregates(store: Store, catalog: Catalog, org: str) -> None:
    run, datapoints, evaluator_id = await _run(store, catalog, org)
    assert await catalog.evaluations.linked_count(run.id) == 0
    assert await catalog.evaluations.link_log(run.id, datapoints[0], "data_a")
    assert not await catalog.evaluations.link_log(run.id, datapoints[0], "data_b")  # one log per datapoint
    assert await catalog.evaluations.linked_count(run.id) == 1
    assert await catalog.evaluations.link_log(run.id, datapoints[1], "data_b")
    assert await catalog.evaluations.linked_count(run.id) == 2
    assert await catalog.evaluations.logs_of(run.id, datapoints) == {
        datapoints[0]: "data_a",
        datapoints[1]: "data_b",
    }
    assert await catalog.evaluations.has_log(run.id, "data_a") and not await catalog.evaluations.has_log(
        run.id, "x"
    )

    put = catalog.evaluations.put_result
    first = await put(
        run.id, log_id="data_a", evaluator_id=evaluator_id, evaluator_version_id="evv_1", value=1, error=None
    )
    again = await put(
        run.id, log_id="data_a", evaluator_id=evaluator_id, evaluator_version_id="evv_2", value=4, error=None
    )
    assert again.id == first.id and (again.value, again.evaluator_version_id) == (4, "evv_2")
    await put(
        run.id,
        log_id="data_b",
        evaluator_id=evaluator_id,
        evaluator_version_id="evv_2",
        value=None,
        error="x",
    )
    assert await catalog.evaluations.aggregates(run.id) == {evaluator_id: 4.0}  # the error is left out
    await put(
        run.id,
        log_id="data_b",
        evaluator_id=evaluator_id,
        evaluator_version_id="evv_2",
        value=1.5,
        error=None,
    )
    assert await catalog.evaluations.aggregates(run.id) == {evaluator_id: pytest.approx(2.75)}
    assert [row.value for row in await catalog.evaluations.results(run.id, ["data_a", "data_b"])] == [4, 1.5]


async def test_what_an_evaluation_uses_stays_until_its_project_goes(
    store: Store, catalog: Catalog, org: str
) -> None:
    run, datapoints, evaluator_id = await _run(store, catalog, org)
    with pytest.raises(InUse):
        await catalog.datasets.delete(org, run.dataset_id)
    with pytest.raises(InUse):
        await catalog.evaluators.delete(org, evaluator_id)
    dataset = await catalog.datasets.get(org, run.dataset_id)
    assert dataset is not None and (dataset.datapoint_count, dataset.version) == (
        2,
        1,
    )  # the bump rolled back
    assert await catalog.evaluations.link_log(run.id, datapoints[0], "data_a")
    await catalog.projects.delete(org, run.project_id)
    assert await catalog.evaluations.get(org, run.id) is None
    # an evaluation created for a project deleted meanwhile is not inserted
    again = await catalog.evaluations.create(
        org,
        project_id=run.project_id,
        config_id=run.config_id,
        dataset_id=run.dataset_id,
        evaluator_ids=[],
        name=None,
    )
    assert again is None
    assert await catalog.evaluators.delete(org, evaluator_id)
    assert await catalog.datasets.delete(org, run.dataset_id)


async def _another_run(catalog: Catalog, like: EvaluationRow, name: str) -> EvaluationRow:
    """A second run of ``like``'s config, dataset (as it is now) and evaluators."""
    created = await catalog.evaluations.create(
        like.org_id,
        project_id=like.project_id,
        config_id=like.config_id,
        dataset_id=like.dataset_id,
        evaluator_ids=list(like.evaluator_ids),
        name=name,
    )
    assert created is not None
    return created


async def test_a_projects_runs_oldest_or_newest_first(store: Store, catalog: Catalog, org: str) -> None:
    first, _, _ = await _run(store, catalog, org)
    second = await _another_run(catalog, first, "later")
    oldest, total = await catalog.evaluations.of_project(org, first.project_id, page=0, size=1)
    newest, _ = await catalog.evaluations.of_project(org, first.project_id, page=0, size=1, newest_first=True)
    assert (
        total == 2 and [row.id for row in oldest] == [first.id] and [row.id for row in newest] == [second.id]
    )


async def test_a_page_of_runs_counts_snapshots_and_means_in_one_go(
    store: Store, catalog: Catalog, org: str
) -> None:
    first, _, evaluator_id = await _run(store, catalog, org)
    assert await catalog.datasets.add(org, first.dataset_id, [NewDatapoint(inputs={"q": "late"})])
    second = await _another_run(catalog, first, "after the addition")
    assert second.dataset_version > first.dataset_version
    assert await catalog.evaluations.snapshot_counts([first, second]) == {first.id: 2, second.id: 3}

    put = catalog.evaluations.put_result
    for run, log_id, value in ((first, "data_1", 1), (first, "data_2", 2), (second, "data_3", 10)):
        await put(
            run.id,
            log_id=log_id,
            evaluator_id=evaluator_id,
            evaluator_version_id="evv",
            value=value,
            error=None,
        )
    assert await catalog.evaluations.aggregates_of([first.id, second.id, "ev_none"]) == {
        first.id: {evaluator_id: 1.5},
        second.id: {evaluator_id: 10.0},
    }
