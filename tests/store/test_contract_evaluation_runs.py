"""The leases of generated evaluation runs (``RunLeases``) on SQLite and PostgreSQL: a new run is held by the
process that created it; a run is taken only from nobody, from a lapsed lease or from a holder that is gone;
renewing keeps what is held; finishing and releasing give it up; reopening makes a finished run unfinished."""

from __future__ import annotations

import time

from loopgate.store import tables
from loopgate.store.catalog import Catalog
from loopgate.store.datasets import NewDatapoint
from loopgate.store.evaluation_runs import RunLeases
from loopgate.store.evaluations import EvaluationRow
from loopgate.store.repository import Store


async def _run(store: Store, catalog: Catalog, org: str, runner: str | None) -> EvaluationRow:
    project_id = await store.project_by_name(org, "runs")
    config_id = await store.model_config_id(org, project_id, "hash", {"model": "m", "provider": "mock"})
    dataset = await catalog.datasets.create(org, project_id, "golden", "")
    assert dataset is not None
    assert await catalog.datasets.add(org, dataset.id, [NewDatapoint(inputs={"q": "1"})]) is not None
    created = await catalog.evaluations.create(
        org,
        project_id=project_id,
        config_id=config_id,
        dataset_id=dataset.id,
        evaluator_ids=[],
        name=None,
        runner=runner,
        lease_seconds=60,
    )
    assert created is not None
    return created


async def _lapse(store: Store, evaluation_id: str) -> None:
    statement = tables.evaluations.update().where(tables.evaluations.c.id == evaluation_id)
    async with store.engine.begin() as connection:
        await connection.execute(statement.values(lease_until=time.time() - 1))


async def test_a_new_run_is_its_creators_until_the_lease_lapses(
    store: Store, catalog: Catalog, org: str
) -> None:
    leases = RunLeases(store.engine, lease_seconds=30)
    run = await _run(store, catalog, org, runner="me")
    assert (run.status, run.hl_generated, run.generated_at) == ("pending", True, None)
    assert await leases.claim("other") is None
    assert await leases.claim("me", skip={run.id}) is None  # already running here
    taken = await leases.claim("me")
    assert taken is not None and (taken.id, taken.status) == (run.id, "running")

    assert await leases.claim("other", abandoned=lambda holder: holder == "me") is not None  # "me" is gone
    assert await leases.renew("me") == set()  # lost to "other"
    assert await leases.renew("other") == {run.id}
    await _lapse(store, run.id)
    assert (await leases.claim("third")) is not None  # a lapsed lease is anyone's


async def test_finishing_releasing_and_reopening(store: Store, catalog: Catalog, org: str) -> None:
    leases = RunLeases(store.engine, lease_seconds=30)
    run = await _run(store, catalog, org, runner="me")
    client_run = await _run(store, catalog, org, runner=None)
    assert client_run.status == "running" and not client_run.hl_generated
    assert not await leases.finish(run.id, "other", status="completed")  # not its to finish
    await leases.release("me")
    taken = await leases.claim("other")
    assert taken is not None and taken.id == run.id  # released: taken at once, no lapse to wait for
    assert await leases.claim("other", skip={run.id}) is None  # a client run is never claimed

    assert await leases.finish(run.id, "other", status="completed")
    finished = await catalog.evaluations.get(org, run.id)
    assert finished is not None and finished.status == "completed" and finished.generated_at is not None
    assert await leases.claim("other") is None and await leases.renew("other") == set()

    await leases.reopen(org, run.id)
    reopened = await catalog.evaluations.get(org, run.id)
    assert reopened is not None and (reopened.status, reopened.generated_at) == ("running", None)
    again = await leases.claim("third")
    assert again is not None and again.id == run.id


async def test_cancelling_and_resuming(store: Store, catalog: Catalog, org: str) -> None:
    leases = RunLeases(store.engine, lease_seconds=30)
    run = await _run(store, catalog, org, runner="me")
    assert not await leases.resume(org, run.id)  # only a cancelled run resumes
    assert not await leases.cancel("another-org", run.id)
    assert await leases.cancel(org, run.id)
    assert not await leases.cancel(org, run.id)  # cancelled already
    cancelled = await catalog.evaluations.get(org, run.id)
    assert cancelled is not None and (cancelled.status, cancelled.generated_at) == ("cancelled", None)
    assert await leases.claim("me") is None and await leases.renew("me") == set()

    assert await leases.resume(org, run.id)
    taken = await leases.claim("other")
    assert taken is not None and (taken.id, taken.status) == (run.id, "running")
    assert await leases.finish(run.id, "other", status="completed")
    assert not await leases.cancel(org, run.id)  # finished: nothing to stop
