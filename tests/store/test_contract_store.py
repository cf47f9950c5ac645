"""The generation path's store (``Store``): keys, get-or-create of projects, config versions and sessions
(also when several processes race on first use), parents, and logs read back with their content."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store import tables
from loopgate.store.db import create_engine
from loopgate.store.repository import Store, hash_api_key
from loopgate.store.writers import LogWriter
from tests.store.conftest import log_row, stamp, write


async def _count(engine: AsyncEngine, table: tables.Table, *where: object) -> int:
    query = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


@pytest.fixture
async def stores(database_url: str, writer: LogWriter) -> AsyncIterator[list[Store]]:
    """Four stores on engines of their own, like four server processes: nothing cached is shared."""
    engines = [create_engine(database_url) for _ in range(4)]
    yield [Store(engine, writer) for engine in engines]
    for engine in engines:
        await engine.dispose()


async def test_api_keys_are_stored_hashed_and_resolve_to_their_organization(store: Store) -> None:
    assert not await store.has_api_keys()
    key, org_id = await store.create_api_key(organization="acme", name="ci")
    again, same_org = await store.create_api_key(organization="acme", name=None)
    assert await store.has_api_keys()
    assert same_org == org_id and again != key
    assert await store.organization_for_key(key) == org_id
    assert await store.organization_for_key("lg_unknown") is None
    async with store.engine.connect() as connection:
        hashes = set((await connection.execute(select(tables.api_keys.c.key_hash))).scalars())
    assert hashes == {hash_api_key(key), hash_api_key(again)}


async def test_a_key_is_read_back_by_secret_or_id_with_its_hash_never_the_key(store: Store) -> None:
    key, org_id = await store.create_api_key(organization="acme", name="browser")
    found = await store.api_key_by_secret(key)
    assert found is not None and found.org_id == org_id and found.name == "browser"
    assert found.key_hash == hash_api_key(key) and key not in {found.id, found.key_hash}
    assert await store.api_key_by_id(found.id) == found
    assert await store.api_key_by_secret("lg_unknown") is None
    assert await store.api_key_by_id("key_unknown") is None


async def test_concurrent_first_use_of_a_project_name_makes_one_project(
    stores: list[Store], org: str
) -> None:
    found = await asyncio.gather(*(store.project_by_name(org, "fresh") for store in stores for _ in range(5)))
    assert len(set(found)) == 1
    assert await _count(stores[0].engine, tables.projects, tables.projects.c.org_id == org) == 1
    assert await stores[1].project_exists(org, found[0])
    assert not await stores[1].project_exists("tm_other", found[0])


async def test_a_project_deleted_elsewhere_is_forgotten_on_request(
    store: Store, catalog: object, org: str
) -> None:
    project_id = await store.project_by_name(org, "short-lived")
    assert await store.project_exists(org, project_id)
    async with store.engine.begin() as connection:
        await connection.execute(tables.projects.delete().where(tables.projects.c.id == project_id))
    store.forget_project(org, project_id, "short-lived")
    assert not await store.project_exists(org, project_id)
    assert await store.project_by_name(org, "short-lived") != project_id


async def test_concurrent_first_use_of_config_parameters_makes_one_version(
    stores: list[Store], org: str
) -> None:
    project_id = await stores[0].project_by_name(org, "configs")
    body = {"provider": "mock", "model": "mock-1", "temperature": 0.5}
    found = await asyncio.gather(
        *(store.model_config_id(org, project_id, "h" * 64, body) for store in stores for _ in range(5))
    )
    assert len(set(found)) == 1
    assert await _count(stores[0].engine, tables.model_configs) == 1
    stored = await stores[2].model_config(found[0])
    assert stored is not None and stored["name"] == "mock-1" and stored["config_type"] == "model"
    other = await stores[0].model_config_id(org, project_id, "g" * 64, {**body, "name": "named"})
    assert other != found[0]
    assert (await stores[0].model_config(other) or {})["name"] == "named"
    assert await stores[0].model_config("config_missing") is None


async def test_concurrent_first_use_of_a_session_reference_makes_one_session(
    stores: list[Store], org: str
) -> None:
    found = await asyncio.gather(
        *(store.session_by_reference(org, "conv-1") for store in stores for _ in range(5))
    )
    assert len(set(found)) == 1
    assert await _count(stores[0].engine, tables.sessions) == 1
    assert await stores[3].session_exists(org, found[0])
    assert not await stores[3].session_exists("tm_other", found[0])


async def test_the_same_reference_in_two_organizations_is_two_sessions(store: Store, org: str) -> None:
    _key, other_org = await store.create_api_key(organization="other", name=None)
    assert await store.session_by_reference(org, "shared") != await store.session_by_reference(
        other_org, "shared"
    )


async def test_log_parent_by_id_and_by_reference(store: Store, org: str) -> None:
    session_id = await store.session_by_reference(org, "tree")
    (log_id,) = await write(store, log_row(org, session_id=session_id, reference_id="ref-1"))
    assert await store.log_parent(org, log_id=log_id) == (log_id, session_id)
    assert await store.log_parent(org, reference_id="ref-1") == (log_id, session_id)
    assert await store.log_parent("tm_other", log_id=log_id) is None
    assert await store.log_parent(org, reference_id="missing") is None


async def test_a_log_reads_back_with_its_content_expanded(store: Store, org: str) -> None:
    prompt = "You are a careful assistant. " * 10
    blobs: dict[str, str] = {}
    row = log_row(
        org,
        blobs,
        inputs={"persona": "pirate", "long": prompt},
        messages=[{"role": "system", "content": prompt}],
        metadata={"tier": "gold", "n": 2},
        created_at=stamp(),
        save=False,
        prompt_tokens=12,
        provider_latency=0.25,
    )
    await write(store, row, blobs=blobs)
    log = await store.get_log(org, row["id"])
    assert log is not None
    assert log["payload"]["inputs"] == {"persona": "pirate", "long": prompt}
    assert log["payload"]["messages"] == [{"role": "system", "content": prompt}]
    assert log["metadata"] == {"tier": "gold", "n": 2}
    assert log["save"] is False and log["prompt_tokens"] == 12 and log["provider_latency"] == 0.25
    assert log["created_at"].replace(tzinfo=log["created_at"].tzinfo or UTC) == stamp()
    assert await store.get_log("tm_other", row["id"]) is None
    assert await _count(store.engine, tables.blobs) == 1  # the prompt, stored once for both places
