"""Revision 0005 on every backend: search answered from the trigram indexes (SQLite: the FTS5 table kept by
triggers) with the same results as the plain scan, and the log tallies behind the lists' totals staying
exact through inserts, updates, deletes, retention and project deletion -- also for logs that existed
before the migration."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text

from loopgate import ids
from loopgate.store import tables
from loopgate.store.db import create_engine, migrate, migration_config
from loopgate.store.logs import LogFilter, LogStore
from loopgate.store.model_configs import ConfigStore
from loopgate.store.projects import ProjectStore
from loopgate.store.repository import Store
from loopgate.store.retention import prune
from tests.postgres import PostgresCluster
from tests.store.conftest import BACKENDS, log_row, stamp, write

LONG_INPUT = "a long input that lives in the blobs table, with the Zanzibar needle inside it " * 3


async def _found(logs: LogStore, org: str, project_id: str, term: str) -> tuple[list[str], int]:
    rows, total = await logs.page(org, LogFilter(project_id, search=term), [], page=0, size=50)
    return [row["id"] for row in rows], total


async def test_search_uses_the_index_and_follows_changes(store: Store, org: str, backend: str) -> None:
    logs = LogStore(store.engine)
    project_id = await store.project_by_name(org, "indexed-search")
    blobs: dict[str, str] = {}
    by_output = log_row(org, project_id=project_id, output="The QUICK brown Fox")
    by_input = log_row(org, project_id=project_id, output="nothing", inputs={"topic": "Mauritius"})
    by_blob = log_row(org, blobs, project_id=project_id, output="nothing", inputs={"doc": LONG_INPUT})
    other = log_row(org, project_id=project_id, output="unrelated")
    await write(store, by_output, by_input, by_blob, other, blobs=blobs)

    assert await _found(logs, org, project_id, "quick BROWN") == ([by_output["id"]], 1)
    assert await _found(logs, org, project_id, "mauritius") == ([by_input["id"]], 1)
    assert await _found(logs, org, project_id, "zanzibar NEEDLE") == ([by_blob["id"]], 1)
    assert await _found(logs, org, project_id, "topic") == ([by_input["id"]], 1)  # JSON keys count too
    assert await _found(logs, org, project_id, "ox") == ([by_output["id"]], 1)  # short: the scan

    assert await logs.update(org, other["id"], {"output": "now it says Mauritius"})
    assert await logs.update(org, by_output["id"], {"output": "renamed"})
    assert set((await _found(logs, org, project_id, "MAURITIUS"))[0]) == {by_input["id"], other["id"]}
    assert await _found(logs, org, project_id, "quick") == ([], 0)

    assert await logs.delete(org, [by_input["id"], by_blob["id"]]) == []
    assert await _found(logs, org, project_id, "mauritius") == ([other["id"]], 1)
    assert await _found(logs, org, project_id, "zanzibar") == ([], 0)

    if backend == "sqlite":  # the lookup really goes through the FTS5 table
        async with store.engine.connect() as connection:
            query = text("SELECT rowid FROM logs_search WHERE logs_search MATCH :q")
            assert len((await connection.execute(query, {"q": 'output : "mauritius"'})).all()) == 1


async def test_search_folds_case_beyond_ascii(store: Store, org: str) -> None:
    """Through the trigram index (3+ characters) and the scan (shorter); in outputs, inputs, long inputs."""
    logs = LogStore(store.engine)
    project_id = await store.project_by_name(org, "unicode-search")
    blobs: dict[str, str] = {}
    output = log_row(org, project_id=project_id, output="Résumé ÉTÉ")
    short = log_row(org, project_id=project_id, output="nothing", inputs={"bird": "Ñandú"})
    long = log_row(org, blobs, project_id=project_id, output="x", inputs={"doc": "ΑΘΗΝΑ is a city. " * 5})
    await write(store, output, short, long, blobs=blobs)
    assert await _found(logs, org, project_id, "RÉSUMÉ") == ([output["id"]], 1)
    assert await _found(logs, org, project_id, "été") == ([output["id"]], 1)
    assert await _found(logs, org, project_id, "ñandú") == ([short["id"]], 1)
    assert await _found(logs, org, project_id, "Ñ") == ([short["id"]], 1)  # short: the scan
    assert await _found(logs, org, project_id, "αθήνα") == ([], 0)  # accents are not folded away
    assert await _found(logs, org, project_id, "αθηνα") == ([long["id"]], 1)


async def test_a_term_in_many_long_inputs_finds_every_log(store: Store, org: str) -> None:
    """More blobs hold the term than are looked up one by one (``_FEW_BLOBS``), most of them another
    project's and another organization's: every log of the project that has it is still found, at any
    depth of its inputs, and counted."""
    logs = LogStore(store.engine)
    mine = await store.project_by_name(org, "few-of-many")
    crowded = await store.project_by_name(org, "many")
    _key, stranger = await store.create_api_key(organization=f"org-{ids.new_id('o')}", name=None)
    elsewhere = await store.project_by_name(stranger, "many-elsewhere")
    blobs: dict[str, str] = {}

    def document(number: int) -> str:
        return f"document {number:04d} of a retrieval corpus, mentioning the Okapi somewhere in it" * 2

    rows = [log_row(org, blobs, project_id=crowded, inputs={"doc": document(n)}) for n in range(150)]
    rows += [
        log_row(stranger, blobs, project_id=elsewhere, inputs={"doc": document(n)}) for n in range(150, 300)
    ]
    found = [
        log_row(org, blobs, project_id=mine, inputs={"doc": document(300)}),
        log_row(org, blobs, project_id=mine, inputs={"nested": {"pages": [document(301)]}}),
        log_row(org, blobs, project_id=mine, output="an okapi in the output", inputs={"doc": "short"}),
    ]
    missed = log_row(org, blobs, project_id=mine, inputs={"doc": "no animal here " * 10})
    await write(store, *rows, *found, missed, blobs=blobs)

    ids_found, total = await _found(logs, org, mine, "OKAPI")
    assert (sorted(ids_found), total) == (sorted(row["id"] for row in found), 3)
    assert (await _found(logs, org, crowded, "okapi"))[1] == 150
    assert (await _found(logs, stranger, elsewhere, "okapi"))[1] == 150
    assert await _found(logs, org, mine, "document 0301") == ([found[1]["id"]], 1)  # few blobs: as before


async def _tallied(store: Store, org: str) -> dict[tuple[str, str], int]:
    """(project, config) -> logs, from the tallies, next to the same numbers counted from the logs."""
    tallies, logs = tables.log_tallies, tables.logs
    async with store.engine.connect() as connection:
        kept = {
            (project, config): count
            for project, config, count in await connection.execute(
                select(tallies.c.project_id, tallies.c.config_id, tallies.c.logs).where(
                    tallies.c.org_id == org, tallies.c.logs != 0
                )
            )
        }
        counted = {
            (project or "", config or ""): count
            for project, config, count in await connection.execute(
                select(logs.c.project_id, logs.c.config_id, func.count())
                .where(logs.c.org_id == org)
                .group_by(logs.c.project_id, logs.c.config_id)
            )
        }
    assert kept == counted
    return kept


async def test_tallies_stay_exact(store: Store, org: str) -> None:
    logs, projects, configs = LogStore(store.engine), ProjectStore(store.engine), ConfigStore(store.engine)
    main = await store.project_by_name(org, "tallied")
    side = await store.project_by_name(org, "tallied-side")
    config = await store.model_config_id(org, main, "c" * 64, {"provider": "mock", "model": "m-1"})
    rows = [log_row(org, project_id=main, config_id=config if n % 2 else None) for n in range(6)]
    rows += [log_row(org, project_id=side), log_row(org, project_id=None)]
    rows.append(log_row(org, project_id=main, config_id=config, created_at=stamp(-60 * 24 * 400)))
    await write(store, *rows)
    assert await _tallied(store, org) == {(main, ""): 3, (main, config): 4, (side, ""): 1, ("", ""): 1}

    assert (await logs.page(org, LogFilter(main), [], page=0, size=2))[1] == 7
    assert (await logs.page(org, LogFilter(main, models=["m-1"]), [], page=0, size=2))[1] == 4
    assert (await logs.page(org, LogFilter(main, models=["m-2"]), [], page=0, size=2))[1] == 0
    assert await projects.log_counts([main, side]) == {main: 7, side: 1}
    usage = await configs.usage([config])
    assert usage[config].num_datapoints == 4

    assert await logs.update(org, rows[0]["id"], {"project_id": side, "config_id": config})
    assert await logs.delete(org, [rows[1]["id"]]) == []
    expected = {(main, ""): 2, (main, config): 3, (side, ""): 1, (side, config): 1, ("", ""): 1}
    assert await _tallied(store, org) == expected

    deleted = await prune(store.engine, before=stamp(-60 * 24 * 300))
    assert deleted.logs == 1
    assert await _tallied(store, org) == {**expected, (main, config): 2}
    await projects.delete(org, side)
    assert await _tallied(store, org) == {(main, ""): 2, (main, config): 2, ("", ""): 1}


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return cluster.database("revision5")
    return f"sqlite+aiosqlite:///{tmp_path / 'revision5.db'}"


async def test_the_migration_indexes_and_tallies_existing_logs(empty_url: str) -> None:
    config = migration_config(empty_url)
    await asyncio.to_thread(command.upgrade, config, "0004")
    engine = create_engine(empty_url)
    try:
        store = Store(engine, writer=None)  # type: ignore[arg-type]  # rows go in with plain inserts
        _key, org = await store.create_api_key(organization="before-0005", name=None)
        project_id = await store.project_by_name(org, "old-logs")
        blobs: dict[str, str] = {}
        rows = [
            log_row(org, project_id=project_id, output="an OLD Mauritius output"),
            log_row(org, blobs, project_id=project_id, output="x", inputs={"doc": LONG_INPUT}),
            log_row(org, project_id=project_id, output="plain", created_at=stamp() - timedelta(days=1)),
        ]
        async with engine.begin() as connection:
            await connection.execute(
                tables.blobs.insert(), [{"hash": key, "data": value} for key, value in blobs.items()]
            )
            await connection.execute(tables.logs.insert(), rows)
        await asyncio.to_thread(migrate, empty_url)

        logs = LogStore(engine)
        assert await _found(logs, org, project_id, "mauritius") == ([rows[0]["id"]], 1)
        assert await _found(logs, org, project_id, "zanzibar") == ([rows[1]["id"]], 1)
        assert (await logs.page(org, LogFilter(project_id), [], page=0, size=1))[1] == 3
        assert await ProjectStore(engine).log_counts([project_id]) == {project_id: 3}
    finally:
        await engine.dispose()
