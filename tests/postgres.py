"""A throwaway PostgreSQL 15 cluster for the tests: ``initdb`` into a temporary directory, ``pg_ctl start``
on a free loopback port (unix socket in that directory too), one fresh database per test or server.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster is created and run as the
``postgres`` user (``runuser``) in a directory that user owns. ``fsync=off``: a test cluster never has to
survive a power loss, and the tests are several times faster without the flushes.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

BIN = Path(os.environ.get("LOOPGATE_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
T = TypeVar("T")


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Runs a coroutine to completion from sync code, even from inside a running event loop (async fixtures
    and tests): it gets an event loop of its own in a helper thread."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """One running cluster. ``database()`` makes a fresh, empty database and returns its asyncpg URL."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL binaries not found in {BIN} (set LOOPGATE_POSTGRES_BIN)")
        self.directory = Path(tempfile.mkdtemp(prefix="loopgate-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._running = False
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self.resume()
        self._running = True
        atexit.register(self.stop)  # also when the session ends abnormally

    def pause(self) -> None:
        """Stops the server, keeping its data: a database outage, for as long as the test wants."""
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Starts the server on its data, on the same port."""
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.directory}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=400",
        ]
        self._run(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "postgres.log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        try:
            self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "t", template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given, which is instant for a migrated schema)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        copy = f" TEMPLATE {template}" if template else ""

        async def create() -> None:
            connection = await asyncpg.connect(self.dsn("postgres"))
            try:
                await connection.execute(f'CREATE DATABASE "{name}"{copy}')
            finally:
                await connection.close()

        run_sync(create)
        return self.url(name)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def plain_dsn(url: str) -> str:
    """asyncpg's own DSN for a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def pg_rows(url: str, query: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
    """Runs one statement written with ``?`` placeholders (as for sqlite3) and returns its rows."""
    counter = iter(range(1, len(params) + 1))
    numbered = re.sub(r"\?", lambda _match: f"${next(counter)}", query)

    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(plain_dsn(url))
        try:
            rows: list[asyncpg.Record] = await connection.fetch(numbered, *params)
            return rows
        finally:
            await connection.close()

    return run_sync(fetch)
