"""Datasets and datapoints (``DatasetStore``): scoped by organization, an exact count and a version per change
even under concurrent additions, all-or-nothing deletes, and what deleting a project leaves."""

from __future__ import annotations

import asyncio

from loopgate.store.catalog import Catalog
from loopgate.store.datasets import NewDatapoint
from loopgate.store.repository import Store
from tests.store.conftest import gather_all


async def _dataset(store: Store, catalog: Catalog, org: str, project: str = "datasets") -> str:
    project_id = await store.project_by_name(org, project)
    created = await catalog.datasets.create(org, project_id, "golden", "trusted answers")
    assert created is not None
    return created.id


async def test_create_read_list_and_update_within_the_organization(
    store: Store, catalog: Catalog, org: str
) -> None:
    project_id = await store.project_by_name(org, "p")
    other_project = await store.project_by_name(org, "q")
    first = await catalog.datasets.create(org, project_id, "first", "one")
    second = await catalog.datasets.create(org, other_project, "second", "two")
    assert first is not None and second is not None
    assert first.id.startswith("evts_") and first.datapoint_count == 0 and first.version == 0
    assert first.created_at.tzinfo is not None and first.created_at == first.updated_at
    assert await catalog.datasets.get(org, first.id) == first
    assert await catalog.datasets.get("tm_other", first.id) is None
    assert [row.id for row in await catalog.datasets.of_org(org)] == [first.id, second.id]
    assert [row.id for row in await catalog.datasets.of_org(org, project_id)] == [first.id]
    assert await catalog.datasets.of_org("tm_other") == []

    assert await catalog.datasets.update(org, first.id, name="renamed")
    assert not await catalog.datasets.update("tm_other", first.id, name="stolen")
    updated = await catalog.datasets.get(org, first.id)
    assert updated is not None and (updated.name, updated.description) == ("renamed", "one")
    assert updated.updated_at > first.updated_at


async def test_create_refuses_a_project_of_another_organization_or_none(
    store: Store, catalog: Catalog, org: str
) -> None:
    project_id = await store.project_by_name(org, "mine")
    assert await catalog.datasets.create("tm_other", project_id, "n", "d") is None
    assert await catalog.datasets.create(org, "pr_missing", "n", "d") is None
    assert await catalog.datasets.of_org(org) == [] and await catalog.datasets.of_org("tm_other") == []


async def test_datapoints_keep_their_order_and_each_addition_is_a_version(
    store: Store, catalog: Catalog, org: str
) -> None:
    dataset_id = await _dataset(store, catalog, org)
    message = {"role": "user", "content": "hi"}
    first = await catalog.datasets.add(
        org, dataset_id, [NewDatapoint(inputs={"a": "1"}, messages=[message], target={"x": [1, {"y": None}]})]
    )
    second = await catalog.datasets.add(org, dataset_id, [NewDatapoint(), NewDatapoint(inputs={"b": "2"})])
    assert first is not None and second is not None
    assert await catalog.datasets.add(org, dataset_id, []) == []  # nothing added, no new version
    dataset = await catalog.datasets.get(org, dataset_id)
    assert dataset is not None and (dataset.datapoint_count, dataset.version) == (3, 2)

    page = await catalog.datasets.page(org, dataset_id, page=0, size=2)
    assert page is not None
    rows, total = page
    assert total == 3 and [row.id for row in rows] == [first[0].id, second[0].id]
    later = await catalog.datasets.page(org, dataset_id, page=1, size=2)
    assert later is not None and [row.id for row in later[0]] == [second[1].id]
    stored = await catalog.datasets.datapoint(org, first[0].id)
    assert stored == first[0] and stored is not None
    assert (stored.inputs, stored.messages, stored.target) == ({"a": "1"}, [message], {"x": [1, {"y": None}]})
    assert await catalog.datasets.datapoint("tm_other", first[0].id) is None
    assert await catalog.datasets.page("tm_other", dataset_id, page=0, size=2) is None
    assert await catalog.datasets.add("tm_other", dataset_id, [NewDatapoint()]) is None


async def test_concurrent_additions_keep_the_count_exact_and_versions_distinct(
    store: Store, catalog: Catalog, org: str
) -> None:
    dataset_id = await _dataset(store, catalog, org)
    batches = await gather_all(
        *(catalog.datasets.add(org, dataset_id, [NewDatapoint(inputs={"n": str(n)})] * 3) for n in range(8))
    )
    assert all(batch is not None and len(batch) == 3 for batch in batches)
    dataset = await catalog.datasets.get(org, dataset_id)
    assert dataset is not None and dataset.datapoint_count == 24 == await catalog.datasets.count_rows(
        dataset_id
    )
    assert dataset.version == 8


async def test_datapoint_updates_and_all_or_nothing_deletes(store: Store, catalog: Catalog, org: str) -> None:
    dataset_id = await _dataset(store, catalog, org)
    other_id = await _dataset(store, catalog, org, project="elsewhere")
    added = await catalog.datasets.add(
        org, dataset_id, [NewDatapoint(inputs={"a": "1"}, target={"t": 1})] * 3
    )
    elsewhere = await catalog.datasets.add(org, other_id, [NewDatapoint()])
    assert added is not None and elsewhere is not None

    changed = NewDatapoint(inputs={"a": "2"})
    assert await catalog.datasets.update_datapoint(org, added[0].id, changed, {"inputs"})
    assert not await catalog.datasets.update_datapoint("tm_other", added[0].id, changed, {"inputs"})
    stored = await catalog.datasets.datapoint(org, added[0].id)
    assert stored is not None and (stored.inputs, stored.target) == ({"a": "2"}, {"t": 1})

    unknown = await catalog.datasets.delete_datapoints(org, [added[1].id, "dp_missing"])
    assert unknown == ["dp_missing"] and await catalog.datasets.count_rows(dataset_id) == 3
    assert await catalog.datasets.delete_datapoints("tm_other", [added[1].id]) == [added[1].id]
    assert await catalog.datasets.delete_datapoints(org, [added[1].id, elsewhere[0].id, added[1].id]) == []
    dataset, other = await catalog.datasets.get(org, dataset_id), await catalog.datasets.get(org, other_id)
    assert dataset is not None and other is not None
    assert (dataset.datapoint_count, other.datapoint_count) == (2, 0)
    assert (
        await catalog.datasets.count_rows(dataset_id) == 2
        and await catalog.datasets.count_rows(other_id) == 0
    )
    assert dataset.version == 3  # added, updated, deleted from


async def test_deleting_a_dataset_deletes_its_datapoints_only(
    store: Store, catalog: Catalog, org: str
) -> None:
    doomed, kept = await _dataset(store, catalog, org), await _dataset(store, catalog, org)
    await catalog.datasets.add(org, doomed, [NewDatapoint()] * 2)
    await catalog.datasets.add(org, kept, [NewDatapoint()])
    assert not await catalog.datasets.delete("tm_other", doomed)
    assert await catalog.datasets.delete(org, doomed)
    assert await catalog.datasets.get(org, doomed) is None and await catalog.datasets.count_rows(doomed) == 0
    assert not await catalog.datasets.delete(org, doomed)
    assert await catalog.datasets.count_rows(kept) == 1


async def test_a_deleted_projects_datasets_stay_detached(store: Store, catalog: Catalog, org: str) -> None:
    project_id = await store.project_by_name(org, "doomed")
    dataset_id = await _dataset(store, catalog, org, project="doomed")
    await catalog.datasets.add(org, dataset_id, [NewDatapoint(inputs={"k": "v"})])
    await catalog.projects.delete(org, project_id)
    dataset = await catalog.datasets.get(org, dataset_id)
    assert dataset is not None and dataset.project_id is None and dataset.datapoint_count == 1
    assert await catalog.datasets.of_org(org, project_id) == []
    assert await catalog.datasets.count_rows(dataset_id) == 1


async def test_an_addition_racing_a_delete_never_leaves_orphans(
    store: Store, catalog: Catalog, org: str
) -> None:
    dataset_id = await _dataset(store, catalog, org)
    added, deleted = await asyncio.gather(
        catalog.datasets.add(org, dataset_id, [NewDatapoint()] * 5), catalog.datasets.delete(org, dataset_id)
    )
    assert deleted and await catalog.datasets.get(org, dataset_id) is None
    assert await catalog.datasets.count_rows(dataset_id) == 0
    assert added is None or len(added) == 5
