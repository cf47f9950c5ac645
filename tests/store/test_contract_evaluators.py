"""Evaluators (``EvaluatorStore``): scoped by organization, every field round-trips, and every update is a
new version id (results name the version that produced them, so a version id must never be reused)."""

from __future__ import annotations

from loopgate.store.catalog import Catalog
from loopgate.store.evaluators import NewEvaluator

EXTERNAL = NewEvaluator(
    name="exact", description="d", type="external", arguments_type="target_required", return_type="boolean"
)


async def test_create_read_list_and_delete_within_the_organization(catalog: Catalog, org: str) -> None:
    config = {"model": "m", "temperature": 0.5, "other": {"nested": [1, None]}}
    first = await catalog.evaluators.create(org, EXTERNAL)
    second = await catalog.evaluators.create(
        org,
        NewEvaluator(
            name="llm",
            description="",
            type="llm",
            arguments_type="target_free",
            return_type="text",
            code="print('never run')",
            model_config=config,
        ),
    )
    assert first.id.startswith("evfn_") and first.version_id.startswith("evv_")
    assert first.created_at.tzinfo is not None and first.created_at == first.updated_at
    assert await catalog.evaluators.get(org, first.id) == first
    stored = await catalog.evaluators.get(org, second.id)
    assert stored == second and stored is not None
    assert (stored.code, stored.model_config) == ("print('never run')", config)
    assert await catalog.evaluators.get("tm_other", first.id) is None
    assert [row.id for row in await catalog.evaluators.of_org(org)] == [first.id, second.id]
    assert await catalog.evaluators.of_org("tm_other") == []

    assert not await catalog.evaluators.delete("tm_other", first.id)
    assert await catalog.evaluators.delete(org, first.id)
    assert not await catalog.evaluators.delete(org, first.id)
    assert [row.id for row in await catalog.evaluators.of_org(org)] == [second.id]


async def test_every_update_is_a_new_version(catalog: Catalog, org: str) -> None:
    created = await catalog.evaluators.create(org, EXTERNAL)
    assert await catalog.evaluators.update(org, created.id, name="renamed", model_config={"model": "m"})
    renamed = await catalog.evaluators.get(org, created.id)
    assert renamed is not None and (renamed.name, renamed.model_config) == ("renamed", {"model": "m"})
    assert renamed.version_id != created.version_id and renamed.updated_at > created.updated_at
    assert await catalog.evaluators.update(org, created.id)  # an empty update is still a version
    again = await catalog.evaluators.get(org, created.id)
    assert again is not None and again.version_id not in (created.version_id, renamed.version_id)
    assert again.name == "renamed"
    assert not await catalog.evaluators.update("tm_other", created.id, name="stolen")
    assert not await catalog.evaluators.update(org, "evfn_missing", name="x")
    unchanged = await catalog.evaluators.get(org, created.id)
    assert unchanged == again
