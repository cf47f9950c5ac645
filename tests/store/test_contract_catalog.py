"""Projects, config versions and deployments (the ``Catalog`` stores), scoped by organization."""

from __future__ import annotations

import pytest

from loopgate.errors import ConflictError
from loopgate.store.catalog import Catalog
from loopgate.store.repository import Store
from tests.store.conftest import log_row, stamp, write


async def test_projects_create_read_and_refuse_a_taken_name(catalog: Catalog, org: str) -> None:
    created = await catalog.projects.create(org, "alpha", directory_id=None)
    assert await catalog.projects.get(org, created.id) == created
    assert await catalog.projects.by_name(org, "alpha") == created
    assert await catalog.projects.get("tm_other", created.id) is None
    assert created.created_at.tzinfo is not None and created.feedback_types == []
    with pytest.raises(ConflictError):
        await catalog.projects.create(org, "alpha", directory_id=None)
    types = [{"type": "tone", "class": "text", "values": None}]
    typed = await catalog.projects.create(org, "typed", directory_id=None, feedback_types=types)
    assert typed.feedback_types == types
    assert await catalog.projects.get(org, typed.id) == typed


async def test_projects_page_filter_and_sort(catalog: Catalog, org: str) -> None:
    for name in ("Beta", "alpha", "gamma-beta", "delta", "École"):
        await catalog.projects.create(org, name, directory_id=None)
    rows, total = await catalog.projects.page(
        org, name_filter="BETA", sort_by="name", descending=False, page=0, size=10
    )
    assert total == 2 and [row.name for row in rows] == ["Beta", "gamma-beta"]
    rows, total = await catalog.projects.page(
        org, name_filter=None, sort_by="name", descending=True, page=2, size=2
    )
    assert total == 5 and [row.name for row in rows] == ["alpha"]  # case does not order names
    rows, _ = await catalog.projects.page(
        org, name_filter=None, sort_by="name", descending=False, page=0, size=3
    )
    assert [row.name for row in rows] == ["alpha", "Beta", "delta"]
    for typed in ("école", "ÉCOLE", "col"):  # beyond ASCII, case folds too (SQLite's lower() alone did not)
        rows, _ = await catalog.projects.page(
            org, name_filter=typed, sort_by="name", descending=False, page=0, size=10
        )
        assert [row.name for row in rows] == ["École"], typed
    rows, _ = await catalog.projects.page(
        org, name_filter="100%", sort_by="name", descending=False, page=0, size=10
    )
    assert rows == []


async def test_projects_update_and_refuse_renaming_onto_a_taken_name(catalog: Catalog, org: str) -> None:
    first = await catalog.projects.create(org, "first", directory_id=None)
    await catalog.projects.create(org, "second", directory_id=None)
    types = [{"type": "rating", "class": "select", "values": [{"value": "good"}]}]
    await catalog.projects.update(org, first.id, name="renamed", feedback_types=types, directory_id="dir_1")
    updated = await catalog.projects.get(org, first.id)
    assert updated is not None and updated.name == "renamed" and updated.feedback_types == types
    assert updated.directory_id == "dir_1" and updated.updated_at >= first.updated_at
    with pytest.raises(ConflictError):
        await catalog.projects.update(org, first.id, name="second")


async def test_deleting_a_project_deletes_what_only_it_owns(store: Store, catalog: Catalog, org: str) -> None:
    project_id = await store.project_by_name(org, "doomed")
    keeper_id = await store.project_by_name(org, "keeper")
    config_id = await store.model_config_id(org, project_id, "c" * 64, {"provider": "mock", "model": "m"})
    session_id = await store.session_by_reference(org, "kept-session")
    environment = await catalog.deployments.default(org)
    await catalog.deployments.deploy(project_id, config_id, [environment.id])
    doomed, kept = (
        log_row(org, project_id=project_id, session_id=session_id),
        log_row(org, project_id=keeper_id),
    )
    await write(store, doomed, kept)
    assert await catalog.projects.log_counts([project_id, keeper_id, "pr_none"]) == {
        project_id: 1,
        keeper_id: 1,
    }
    await catalog.projects.delete(org, project_id)
    assert await catalog.projects.get(org, project_id) is None
    assert await catalog.configs.for_project(project_id) == []
    assert await catalog.deployments.deployed(project_id) == {}
    assert await store.get_log(org, doomed["id"]) is None and await store.get_log(org, kept["id"]) is not None
    assert await store.session_exists(org, session_id)


async def test_config_versions_read_list_and_usage(store: Store, catalog: Catalog, org: str) -> None:
    project_id = await store.project_by_name(org, "versions")
    first = await store.model_config_id(org, project_id, "1" * 64, {"provider": "mock", "model": "one"})
    second = await store.model_config_id(org, project_id, "2" * 64, {"provider": "mock", "model": "two"})
    row = await catalog.configs.get(org, first)
    assert row is not None and row.body == {"provider": "mock", "model": "one"} and row.created_at.tzinfo
    assert await catalog.configs.get("tm_other", first) is None
    assert [config.id for config in await catalog.configs.for_project(project_id)] == [first, second]
    assert set(await catalog.configs.many([first, second, "config_none"])) == {first, second}
    await write(store, *(log_row(org, config_id=first, created_at=stamp(minute)) for minute in (1, 5)))
    usage = await catalog.configs.usage([first, second])
    assert set(usage) == {first} and usage[first].num_datapoints == 2 and usage[first].last_used == stamp(5)
    catalog.configs.forget([first])
    assert await catalog.configs.get(org, first) is not None


async def test_environments_are_seeded_once_and_deployments_replace(
    store: Store, catalog: Catalog, org: str, database_url: str
) -> None:
    environments = await catalog.deployments.environments(org)
    assert [(env.name, env.tag) for env in environments] == [("production", "default"), ("staging", "other")]
    another_process = Catalog.create(Store(store.engine, store.writer), environments=["staging"])
    assert await another_process.deployments.environments(org) == environments
    production, staging = environments
    assert await catalog.deployments.by_name(org, None) == production
    assert await catalog.deployments.by_name(org, "staging") == staging
    assert await catalog.deployments.by_name(org, "nowhere") is None
    assert await catalog.deployments.by_id(org, staging.id) == staging

    project_id = await store.project_by_name(org, "deployed")
    one = await store.model_config_id(org, project_id, "a" * 64, {"provider": "mock", "model": "a"})
    two = await store.model_config_id(org, project_id, "b" * 64, {"provider": "mock", "model": "b"})
    assert await catalog.deployments.deploy_if_vacant(project_id, one, production.id)
    assert not await catalog.deployments.deploy_if_vacant(project_id, two, production.id)
    await catalog.deployments.deploy(project_id, two, [production.id, staging.id])
    assert await catalog.deployments.deployed(project_id) == {production.id: two, staging.id: two}
    assert await catalog.deployments.deployed_many([project_id, "pr_none"], staging.id) == {project_id: two}
    await catalog.deployments.undeploy(project_id, staging.id)
    assert await catalog.deployments.deployed_config(project_id, staging.id) is None
    assert await catalog.deployments.deployed_config(project_id, production.id) == two
