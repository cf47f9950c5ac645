"""Engine creation (with SQLite's durability settings) and migrations."""

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from loopgate.store.failures import UNREACHABLE
from loopgate.store.migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def create_engine(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10, max_overflow: int = 10
) -> AsyncEngine:
    """The async engine of ``url``. ``pool_size`` and ``max_overflow`` bound each process's connections to a
    server database (PostgreSQL): N workers hold at most N x (pool_size + max_overflow) connections."""
    if not is_sqlite(url):
        server = create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # A connection PostgreSQL (or a proxy in front of it) closed while idle is replaced, not reused.
            pool_recycle=1800,
        )
        dbapi = server.dialect.dbapi
        assert dbapi is not None  # the async drivers' adapters always have one

        @event.listens_for(server.sync_engine, "do_connect")
        def _unreachable_is_operational(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            # A server that is down refuses the socket, and asyncpg raises that OSError as it is, which no
            # one expects from a database call (a 500). As the driver's OperationalError it becomes
            # SQLAlchemy's, a 503 that says the database is unreachable (store/failures.py).
            try:
                return dialect.connect(*cargs, **cparams)
            except OSError as exc:
                raise dbapi.OperationalError(f"{UNREACHABLE}: {exc}") from exc

        return server
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers never block the writer. synchronous=FULL: each commit fsyncs the WAL, so a commit
        # that returned survives a power loss, not just a process kill (NORMAL only guarantees the latter).
        # Group commit makes the fsync affordable: one per batch of concurrent requests, not one per log.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite's own lower() folds ASCII only, so a search for "été" missed "ÉTÉ" (ilike is lower() LIKE
        # lower() here). Python's folds every script, as PostgreSQL's lower() does in a UTF-8 locale.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    return engine


def _lower(value: object) -> str | None:
    """SQL ``lower()`` with Unicode case mapping: NULL kept, anything else read as text and lower-cased."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.lower()


def migration_config(url: str) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database to the newest schema. Safe to run on every start."""
    if is_sqlite(url):
        _ensure_sqlite_directory(url)
        if _sqlite_revision(url) == HEAD:
            return  # already current: skip importing alembic (a third of a second of start-up)
    from alembic import command

    command.upgrade(migration_config(url), "head")


def _sqlite_revision(url: str) -> str | None:
    path = sqlite_path(url)
    if not Path(path).exists():
        return None
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(row[0]) if row else None


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite[+driver]:///path`` URL."""
    return url.split("///", 1)[-1].split("?", 1)[0]


def _ensure_sqlite_directory(url: str) -> None:
    path = sqlite_path(url)
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
