"""Fixtures of the storage contract suite: every test runs once on SQLite and once on PostgreSQL, each on a
fresh database at the newest schema (a copy of one migrated template, so migrations run once per session)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate import ids
from loopgate.store import content
from loopgate.store.catalog import Catalog
from loopgate.store.db import create_engine, migrate
from loopgate.store.repository import Store
from loopgate.store.writers import LogWriter, create_writer
from tests.postgres import PostgresCluster, database_name

BACKENDS = ["sqlite", "postgresql"]
BASE_TIME = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
_ticks = count()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    url = postgres.database("template")
    migrate(url)
    return database_name(url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return cluster.database("store", template=request.getfixturevalue("postgres_template"))
    path = tmp_path / "store.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    instance = create_engine(database_url)
    yield instance
    await instance.dispose()


@pytest.fixture
async def writer(engine: AsyncEngine, database_url: str) -> AsyncIterator[LogWriter]:
    instance = create_writer(engine, database_url, max_batch=512)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
def store(engine: AsyncEngine, writer: LogWriter) -> Store:
    return Store(engine, writer)


@pytest.fixture
def catalog(store: Store) -> Catalog:
    return Catalog.create(store, environments=["staging"])


@pytest.fixture
async def org(store: Store) -> str:
    _key, org_id = await store.create_api_key(organization=f"org-{ids.new_id('o')}", name=None)
    return org_id


def stamp(minutes: float = 0) -> datetime:
    return BASE_TIME + timedelta(minutes=minutes)


def log_row(org_id: str, blobs: dict[str, str] | None = None, **values: Any) -> dict[str, Any]:
    """A log row as the generation service builds it: ``inputs``/``messages`` go into the payload (long
    strings interned into ``blobs``), ``metadata`` is encoded; anything else names a column."""
    created = values.pop("created_at", None) or stamp(next(_ticks) / 1000)
    document = {
        "inputs": values.pop("inputs", {}),
        "messages": values.pop("messages", []),
        "provider_request": {"model": "mock-1"},
    }
    metadata = values.pop("metadata", None)
    row: dict[str, Any] = {
        "id": ids.new_id(ids.LOG),
        "org_id": org_id,
        "created_at": created,
        "updated_at": created,
        "save": True,
        "status": "complete",
        "sample_index": 0,
        "output": "an output",
        "payload": orjson.dumps(content.intern(document, blobs if blobs is not None else {})).decode(),
        "metadata": orjson.dumps(metadata).decode() if metadata is not None else None,
    }
    row.update(values)
    return row


async def write(store: Store, *rows: dict[str, Any], blobs: dict[str, str] | None = None) -> list[str]:
    await store.writer.write_logs(list(rows), blobs or {})
    return [row["id"] for row in rows]


async def gather_all(*awaitables: Any) -> list[Any]:
    return list(await asyncio.gather(*awaitables))
