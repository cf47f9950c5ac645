"""Migrations: the recorded head is alembic's head, and upgrading is idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from loopgate.store.db import migrate, migration_config
from loopgate.store.migrations import HEAD
from tests.helpers import db_rows


def test_head_constant_matches_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    assert ScriptDirectory.from_config(migration_config(url)).get_current_head() == HEAD


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "m.db"
    url = f"sqlite+aiosqlite:///{database}"
    migrate(url)
    migrate(url)
    assert db_rows(database, "SELECT version_num FROM alembic_version")[0][0] == HEAD
    tables = {r[0] for r in db_rows(database, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"logs", "blobs", "projects", "model_configs", "sessions", "environments", "feedback"} <= tables
