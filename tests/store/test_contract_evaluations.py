"""Evaluations (``EvaluationStore``) on SQLite and PostgreSQL: the dataset version pinned at creation bounds
the snapshot, one log per datapoint, one result per log and evaluator (a repeat replaces it), aggregates
as the mean of numeric results, and the rows an evaluation uses cannot be deleted under it while deleting
its project removes it."""

from __future__ import annotations

import pytest

from loopgate.store.catalog import Catalog
from loopgate.store.datasets import NewDatapoint
from loopgate.store.evaluations import EvaluationFilter, EvaluationRow, EvaluationSort
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


async def test_a_projects_runs_filtered_and_sorted(store: Store, catalog: Catalog, org: str) -> None:
    """``of_project`` narrows and orders in SQL: datasets and configs by id or name, statuses, evaluator
    means (runs without one last), ties by creation, and the total counts the filtered rows."""
    first, _, evaluator_id = await _run(store, catalog, org)
    other_config = await store.model_config_id(
        org, first.project_id, "other", {"model": "m", "provider": "mock", "name": "alpha"}
    )
    bronze = await catalog.datasets.create(org, first.project_id, "bronze", "")
    assert bronze is not None
    second = await _another_run(catalog, first, "second")
    third = await catalog.evaluations.create(
        org,
        project_id=first.project_id,
        config_id=other_config,
        dataset_id=bronze.id,
        evaluator_ids=[evaluator_id],
        name="third",
    )
    assert third is not None
    assert await catalog.evaluations.set_status(org, second.id, "completed")
    for run, value in ((first, 2), (third, 7)):
        await catalog.evaluations.put_result(
            run.id,
            log_id="data_x",
            evaluator_id=evaluator_id,
            evaluator_version_id="evv",
            value=value,
            error=None,
        )

    async def ids(where: EvaluationFilter | None = None, *sorts: EvaluationSort, **page: int) -> list[str]:
        rows, _ = await catalog.evaluations.of_project(
            org, first.project_id, where=where, sorts=sorts, **page
        )
        return [row.id for row in rows]

    assert await ids() == [first.id, second.id, third.id]
    assert await ids(None, EvaluationSort("dataset", False)) == [third.id, first.id, second.id]
    assert await ids(None, EvaluationSort("config", False)) == [
        third.id,
        first.id,
        second.id,
    ]  # "alpha" < "m"
    assert await ids(None, EvaluationSort("status", True)) == [second.id, first.id, third.id]
    by_mean = EvaluationSort(f"evaluator-{evaluator_id}", True)
    assert await ids(None, by_mean) == [third.id, first.id, second.id]
    assert await ids(None, EvaluationSort(f"evaluator-{evaluator_id}", False)) == [
        first.id,
        third.id,
        second.id,
    ]
    assert await ids(None, by_mean, page=1, size=1) == [first.id]

    assert await ids(EvaluationFilter(datasets=["golden"])) == [first.id, second.id]
    assert await ids(EvaluationFilter(datasets=[bronze.id, "golden"])) == [first.id, second.id, third.id]
    assert await ids(EvaluationFilter(configs=["alpha"])) == [third.id]
    assert await ids(EvaluationFilter(configs=[first.config_id])) == [first.id, second.id]
    assert await ids(EvaluationFilter(statuses=["completed"])) == [second.id]
    narrowed = EvaluationFilter(
        evaluation_ids=[first.id, third.id], statuses=["running"], datasets=["golden"]
    )
    rows, total = await catalog.evaluations.of_project(org, first.project_id, where=narrowed)
    assert [row.id for row in rows] == [first.id] and total == 1
    assert await ids(EvaluationFilter(datasets=["golden"]), by_mean) == [first.id, second.id]


async def test_a_result_error_with_a_nul_is_stored(store: Store, catalog: Catalog, org: str) -> None:
    # An error carries a provider's own words, which may hold U+0000; PostgreSQL's text cannot, and a run
    # whose result could not be stored was retried for ever. Stored with U+FFFD in its place, as logs are.
    run, _datapoints, evaluator_id = await _run(store, catalog, org)
    stored = await catalog.evaluations.put_result(
        run.id,
        log_id="data_a",
        evaluator_id=evaluator_id,
        evaluator_version_id="evv_1",
        value=None,
        error="a\x00b",
    )
    assert stored.error == "a\ufffdb"
    (read,) = await catalog.evaluations.results(run.id, ["data_a"])
    assert read.error == "a\ufffdb"
