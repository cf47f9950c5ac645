"""Migrations run on every backend from the same history: up to head (twice: a no-op), down to nothing and
up again, leaving the indexes the list queries rely on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from loopgate.store.db import create_engine, migrate, migration_config
from loopgate.store.migrations import HEAD
from tests.store.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres").database("migrations"))
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


def _inspect(connection: Connection) -> tuple[str | None, set[str], set[str]]:
    """(alembic revision, tables, indexes of logs/feedback/sessions)."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    indexes = {
        str(index["name"])
        for table in ("logs", "feedback", "sessions")
        if table in tables
        for index in inspector.get_indexes(table)
    }
    version = None
    if "alembic_version" in tables:
        version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return version, tables, indexes


async def _read(url: str) -> tuple[str | None, set[str], set[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_inspect)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_and_upgrade_again(empty_url: str) -> None:
    await asyncio.to_thread(migrate, empty_url)
    await asyncio.to_thread(migrate, empty_url)
    version, tables, indexes = await _read(empty_url)
    assert version == HEAD
    assert {"logs", "blobs", "projects", "model_configs", "sessions", "environments", "feedback"} <= tables
    assert {"ix_logs_project_org_created", "ix_logs_session_project", "ix_logs_created"} <= indexes
    assert {"ix_feedback_log_type_created", "ix_sessions_org_created_id"} <= indexes

    await asyncio.to_thread(command.downgrade, migration_config(empty_url), "base")
    _version, tables, _indexes = await _read(empty_url)
    assert tables <= {"alembic_version"}
    await asyncio.to_thread(migrate, empty_url)
    assert (await _read(empty_url))[0] == HEAD
