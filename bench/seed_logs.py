"""Seed a database with many logs and time the list queries the API and the log browser make.

    .venv/bin/python bench/seed_logs.py --logs 1000000 --backend both

Each backend gets a fresh database at the newest schema (``--backend postgresql`` starts a throwaway
PostgreSQL 15 cluster, as the tests do, unless ``--postgres-url`` names one). The data: one organization,
five projects (80% of the logs in ``main``), 20 config versions of ``main`` with their own models, one
session per 8 logs, feedback on 5% of logs, 90 days of timestamps, outputs drawn from a small vocabulary
plus one rare word in 0.1% of them, and a system prompt shared as one content blob. Rows go in with COPY
(PostgreSQL) or multi-row INSERTs in large transactions (SQLite), then ANALYZE.

Every query runs through the store layer exactly as the routes call it; each is timed ``--repeat`` times
after one warm-up run and the median is printed as a Markdown table (milliseconds).

``--keep DIR`` keeps the SQLite database in ``DIR`` (with ``--postgres-url``, the PostgreSQL one stays where
it is): a later run with the same options finds the logs already there, migrates them to the newest schema
(which is how a new migration's backfill gets timed on a large database) and only times the queries.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests/postgres.py, the throwaway cluster

from tests.postgres import PostgresCluster, plain_dsn  # noqa: E402

from loopgate.store import content, tables  # noqa: E402
from loopgate.store.db import create_engine, migrate, sqlite_path  # noqa: E402
from loopgate.store.logs import LogFilter, LogStore  # noqa: E402
from loopgate.store.model_configs import ConfigStore  # noqa: E402
from loopgate.store.projects import ProjectStore  # noqa: E402
from loopgate.store.sessions import SessionStore  # noqa: E402

ORG = "tm_bench"
PROJECTS = ["main", "side-a", "side-b", "side-c", "side-d"]
CONFIGS = 20
LOGS_PER_SESSION = 8
RARE_WORD = "zanzibar"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
SYSTEM_PROMPT = "You are a helpful assistant for the bench. Answer briefly and cite sources. " * 4
END = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
CHUNK = 50_000


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{index:021d}" for index in range(count)]


class Dataset:
    """Deterministic rows: the same seed gives both backends the same data."""

    def __init__(self, logs: int) -> None:
        self.logs = logs
        self.random = random.Random(7)
        self.projects = [f"pr_{name}" for name in PROJECTS]
        self.configs = _ids("config", CONFIGS)
        self.sessions = _ids("sesh", logs // LOGS_PER_SESSION + 1)
        blobs: dict[str, str] = {}
        system = content.intern({"role": "system", "content": SYSTEM_PROMPT}, blobs)
        self.system = orjson.dumps(system).decode()
        self.blobs = blobs

    def log_rows(self) -> Iterator[tuple[Any, ...]]:
        columns = [column.name for column in tables.logs.columns]
        step = SPAN / self.logs
        for index in range(self.logs):
            draw = self.random.random()
            project = self.projects[0] if draw < 0.8 else self.projects[1 + index % 4]
            words = self.random.choices(WORDS, k=6)
            if index % 1000 == 0:
                words.append(RARE_WORD)
            created = END - SPAN + step * index
            topic = self.random.choice(WORDS)
            payload = f'{{"inputs":{{"topic":"{topic}"}},"messages":[{self.system}]}}'
            values = {
                "id": f"data_{index:021d}",
                "org_id": ORG,
                "project_id": project,
                "session_id": self.sessions[index // LOGS_PER_SESSION],
                "config_id": self.configs[index % CONFIGS] if project == self.projects[0] else None,
                "created_at": created,
                "updated_at": created,
                "source": "sdk" if index % 3 else "batch",
                "save": True,
                "status": "complete",
                "sample_index": 0,
                "output": " ".join(words),
                "finish_reason": "stop",
                "prompt_tokens": 20,
                "output_tokens": 6,
                "provider_latency": 0.1,
                "metadata": '{"tier":"gold"}' if index % 10 == 0 else None,
                "payload": payload,
            }
            yield tuple(values.get(name) for name in columns)

    def feedback_rows(self) -> Iterator[tuple[Any, ...]]:
        for index in range(0, self.logs, 20):
            value = '"good"' if index % 40 == 0 else '"bad"'
            yield (f"fbk_{index:021d}", ORG, f"data_{index:021d}", "rating", value, None, END)


def _small_rows(data: Dataset) -> dict[str, list[tuple[Any, ...]]]:
    created = END - SPAN
    configs = [
        (config_id, ORG, data.projects[0], f"{n:064d}", f"model-{n}",
         orjson.dumps({"provider": "mock", "model": f"model-{n}"}).decode(), created, "model")
        for n, config_id in enumerate(data.configs)
    ]  # fmt: skip
    return {
        "organizations": [(ORG, "bench", created)],
        "projects": [
            (pid, ORG, name, created, created, None, None)
            for pid, name in zip(data.projects, PROJECTS, strict=True)
        ],
        "model_configs": configs,
        "sessions": [(sid, ORG, f"ref-{sid}", created, created) for sid in data.sessions],
        "blobs": list(data.blobs.items()),
    }


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


async def seed_postgres(url: str, data: Dataset) -> None:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        for table, rows in _small_rows(data).items():
            await connection.copy_records_to_table(table, records=rows, columns=_columns(table))
        for batch in _batches(data.log_rows()):
            await connection.copy_records_to_table("logs", records=batch, columns=_columns("logs"))
        await connection.copy_records_to_table(
            "feedback", records=list(data.feedback_rows()), columns=_columns("feedback")
        )
        # VACUUM as well: autovacuum would have set the visibility map in a long-running server, and without
        # it index-only scans (the counts) visit the heap for every row.
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def seed_sqlite(url: str, data: Dataset) -> None:
    connection = sqlite3.connect(sqlite_path(url))
    connection.execute("PRAGMA synchronous=OFF")
    text = {"created_at", "updated_at"}

    def adapt(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
        # SQLAlchemy's SQLite DateTime format, so stored rows read and compare as the server writes them.
        names = _columns(table)
        return tuple(
            value.strftime("%Y-%m-%d %H:%M:%S.%f") if name in text and value is not None else value
            for name, value in zip(names, row, strict=True)
        )

    def insert(table: str, rows: list[tuple[Any, ...]]) -> None:
        names = _columns(table)
        marks = ", ".join("?" * len(names))
        quoted = ", ".join(f'"{name}"' for name in names)
        statement = f"INSERT INTO {table} ({quoted}) VALUES ({marks})"  # noqa: S608
        with connection:
            connection.executemany(statement, [adapt(table, row) for row in rows])

    try:
        for table, rows in _small_rows(data).items():
            insert(table, rows)
        for batch in _batches(data.log_rows()):
            insert("logs", batch)
        insert("feedback", list(data.feedback_rows()))
        connection.execute("ANALYZE")
    finally:
        connection.close()


def _columns(table: str) -> list[str]:
    return [column.name for column in tables.metadata.tables[table].columns]


async def time_queries(url: str, repeat: int) -> dict[str, float]:
    engine = create_engine(url)
    logs, sessions = LogStore(engine), SessionStore(engine)
    projects, configs = ProjectStore(engine), ConfigStore(engine)
    main = "pr_main"
    day = END - timedelta(days=30)

    async def newest() -> None:
        await logs.page(ORG, LogFilter(main), [], page=0, size=50)

    async def page_100() -> None:
        await logs.page(ORG, LogFilter(main), [], page=100, size=50)

    async def search() -> None:
        await logs.page(ORG, LogFilter(main, search=RARE_WORD), [], page=0, size=50)

    async def by_model() -> None:
        await logs.page(ORG, LogFilter(main, models=["model-7"]), [], page=0, size=50)

    async def by_config() -> None:  # GET /projects/{id}/configs: the versions with their usage
        await configs.usage([row.id for row in await configs.for_project(main)])

    async def by_session() -> None:  # GET /sessions/{id}: the session's logs, whole
        await logs.fetch(ORG, await sessions.log_ids(ORG, "sesh_000000000000000001234"))

    async def by_feedback() -> None:
        await logs.page(ORG, LogFilter(main, feedback={"rating": ["good"]}), [], page=0, size=50)

    async def by_dates() -> None:
        await logs.page(ORG, LogFilter(main, start=day, end=day + timedelta(days=1)), [], page=0, size=50)

    async def session_list() -> None:  # GET /sessions?project_id=...
        rows, _total = await sessions.page_for_project(ORG, main, page=1, size=50)
        await sessions.summaries(ORG, [row["id"] for row in rows])

    async def project_list() -> None:  # GET /projects: a page of projects with their log counts
        rows, _total = await projects.page(
            ORG, name_filter=None, sort_by="created_at", descending=True, page=0, size=10
        )
        await projects.log_counts([row.id for row in rows])

    cases: dict[str, Callable[[], Awaitable[None]]] = {
        "GET /logs, newest page (50)": newest,
        "GET /logs, page 100": page_100,
        f"GET /logs, search a rare word ({RARE_WORD})": search,
        "GET /logs, filter by model": by_model,
        "config versions with usage (by config)": by_config,
        "GET /sessions/{id} (8 logs, whole)": by_session,
        "GET /logs, filter by feedback": by_feedback,
        "GET /logs, one day's date range": by_dates,
        "GET /sessions of a project (page 1, with summaries)": session_list,
        "GET /projects with log counts": project_list,
    }
    timings: dict[str, float] = {}
    try:
        for name, run in cases.items():
            await run()  # warm-up: caches, prepared statements
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                await run()
                samples.append((time.perf_counter() - started) * 1000)
            timings[name] = statistics.median(samples)
            print(f"  {name}: {timings[name]:.1f} ms", file=sys.stderr)
    finally:
        await engine.dispose()
    return timings


def run_backend(backend: str, args: argparse.Namespace, data_dir: Path) -> dict[str, float]:
    cluster: PostgresCluster | None = None
    try:
        if backend == "postgresql":
            if args.postgres_url:
                url = args.postgres_url
            else:
                cluster = PostgresCluster()
                cluster.start()
                url = cluster.database("bench")
        else:
            url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
        seeded = asyncio.run(_count_logs(url))
        started = time.perf_counter()
        migrate(url)
        if seeded:
            seconds = time.perf_counter() - started
            print(f"{backend}: reusing {seeded:,} logs (migrated in {seconds:.0f} s)", file=sys.stderr)
        else:
            data = Dataset(args.logs)
            if backend == "postgresql":
                asyncio.run(seed_postgres(url, data))
            else:
                seed_sqlite(url, data)
            seconds = time.perf_counter() - started
            print(f"{backend}: seeded {args.logs:,} logs in {seconds:.0f} s", file=sys.stderr)
        print(f"{backend}: {asyncio.run(_bytes_per_log(url)):,.0f} bytes per log", file=sys.stderr)
        return asyncio.run(time_queries(url, args.repeat))
    finally:
        if cluster is not None:
            cluster.stop()


async def _count_logs(url: str) -> int:
    """How many logs a kept database already holds (0 for a new one)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(select(func.count()).select_from(tables.logs))).scalar_one())
    except DBAPIError:
        return 0  # no logs table yet
    finally:
        await engine.dispose()


async def _bytes_per_log(url: str) -> float:
    """The database's size over its logs: the SQLite file (WAL checkpointed first), or PostgreSQL's
    ``pg_database_size`` (tables, indexes, TOAST)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            logs = int((await connection.execute(select(func.count()).select_from(tables.logs))).scalar_one())
            if engine.dialect.name == "postgresql":
                size = (
                    await connection.execute(text("SELECT pg_database_size(current_database())"))
                ).scalar()
            else:
                await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                size = Path(sqlite_path(url)).stat().st_size
    finally:
        await engine.dispose()
    return int(size or 0) / max(logs, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", help="an empty database to use instead of a throwaway cluster")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the SQLite database in this directory")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = {backend: run_backend(backend, args, args.keep) for backend in backends}
    else:
        with tempfile.TemporaryDirectory(prefix="loopgate-bench-") as directory:
            results = {backend: run_backend(backend, args, Path(directory)) for backend in backends}
    names = list(next(iter(results.values())))
    print(f"| query ({args.logs:,} logs, median of {args.repeat}) | " + " | ".join(backends) + " |")
    print("|---|" + "---:|" * len(backends))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[b][name]:.1f} ms" for b in backends) + " |")


if __name__ == "__main__":
    main()
